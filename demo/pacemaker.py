"""``make demo-pacemaker``: one failover of a real Pacemaker cluster, as its client saw it.

Root only (namespaces). Forms the two-node cluster of ``cluster_lab`` on the local stack
(NIC updates of 1.5 s), with the recipe of docs/node-client.md and an HTTP service on
10.5.0.110 answering with its node's name. A client requests the VIP every 20 ms; then
server01 is put in standby. Prints the client's view (who answered, and the gap), where
ARM has the IP, and the IP's audit history. Exits 0 when the IP, the group and the client
all ended on server02; stops everything it started.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from cluster_lab.lab import Lab, lab_unavailable, start_lab
from cluster_lab.prober import Probe
from cluster_lab.scenarios import run_scenario
from emulator.stack import start_stack

NIC_UPDATE_SECONDS = "1.5"


def _client_view(probes: list[Probe], since: float) -> list[str]:
    """Runs of equal outcomes: "server01 answered 12 times", "31 requests failed"."""
    lines: list[str] = []
    run_key, run_start, count = None, 0.0, 0
    for probe in probes:
        key = probe.node or f"failed ({probe.error})"
        if key != run_key:
            if run_key is not None:
                lines.append(f"  +{run_start - since:6.2f}s  {run_key} x{count}")
            run_key, run_start, count = key, probe.start, 0
        count += 1
    if run_key is not None:
        lines.append(f"  +{run_start - since:6.2f}s  {run_key} x{count}")
    return lines


def _play(lab: Lab) -> int:
    print("the group runs on server01; the client is answered by", lab.answering(0))
    print("\nstandby server01 (a planned switchover) ...", flush=True)
    result = run_scenario(lab, "switchover")
    print("\nwhat the client saw (time since the standby, who answered, how often):")
    for line in _client_view(lab.probes(result.event_at - 0.5), result.event_at):
        print(line)
    print(
        f"\noutage: {result.outage.seconds:.2f} s ({result.outage.failed_requests} failed "
        f"requests); floor {result.floor:.2f} s (cluster {result.cluster_in_outage:.2f} s "
        f"+ NIC updates {result.nic_update_seconds:.2f} s)"
    )
    print("ARM has 10.5.0.110 on:", ", ".join(f"{n} ({s})" for n, s in lab.holders()))
    print("\naudit history (oldest first):")
    for record in result.records:
        steps = ", ".join(s["name"] for s in record["steps"])
        print(
            f"  {record['action']:8} by {record['caller']['member']}  "
            f"{record['context'].get('event', '-'):6} {record['status']:9}  {steps}"
        )
    ok = result.final_node == "server02" and lab.holders() == [
        (lab.nic_of["server02"], "Succeeded")
    ]
    print("\nOK" if ok else "\nFAILED: the IP, the group and the client did not end on server02")
    return 0 if ok else 1


def main() -> int:
    """Run the demo; 2 when the lab cannot run here."""
    reason = lab_unavailable()
    if reason:
        print(f"demo.pacemaker: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ipmover-demo-pcmk-") as tmp:
        print("starting the local Azure, the local Functions host, the cluster ...", flush=True)
        started = time.monotonic()
        stack = start_stack(
            Path(tmp) / "stack",
            azure_args=["--nic-update-seconds", NIC_UPDATE_SECONDS, "--retry-after", "10"],
        )
        try:
            lab = start_lab(stack, Path(tmp) / "lab")
            print(f"cluster formed in {time.monotonic() - started:.1f} s")
            try:
                return _play(lab)
            finally:
                lab.close()
        finally:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
