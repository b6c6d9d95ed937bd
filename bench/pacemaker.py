"""``python -m bench.pacemaker``: how long a client cannot reach the VIP, per failover.

A real two-node Pacemaker cluster (``cluster_lab``) runs the docs' recipe on the local
stack with the mover's production settings and NIC updates of 2 s (as the other sections);
a client in its own namespace sends requests to 10.5.0.110 all along. Each scenario runs
``--runs`` times (median reported) from the group on server01:

* planned switchover (``standby`` server01);
* server01 crashes (its PID namespace killed: no stop, no release);
* the agent's monitor fails on server01 (its IMDS fails 5 requests in a row);
* partition without fencing (server01 and server02 stop hearing each other, then heal).

Beside each outage stands its floor, from the same run: the cluster's own time inside the
outage before it sent its first request to the mover, plus the NIC updates' own time
(``cluster_lab.scenarios``). The section is written into docs/benchmarks.md between its
markers; ``python -m bench`` keeps it when it rewrites the rest. Needs root and Debian's
pacemaker, pacemaker-cli-utils, corosync and resource-agents (``make system-deps``).

    .venv/bin/python -m bench.pacemaker [--runs 3] [--nic-update 2] [--output FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cluster_lab.lab import lab_unavailable, start_lab
from cluster_lab.scenarios import SCENARIOS, ScenarioResult, run_scenario

from .common import REPO_ROOT, machine, seed_stack

__all__ = ["BEGIN", "END", "PacemakerFigures", "carry_over", "main", "markdown"]

BEGIN = "<!-- pacemaker-section:begin (python -m bench.pacemaker) -->"
END = "<!-- pacemaker-section:end -->"
NIC_UPDATE = 2.0


@dataclass
class PacemakerFigures:
    """Every run of every scenario, and how the run was set up."""

    command: str
    machine: dict[str, str]
    nic_update: float
    runs: dict[str, list[ScenarioResult]] = field(default_factory=dict)
    formed_seconds: float = 0.0
    seconds: float = 0.0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _story(result: ScenarioResult) -> str:
    steps = [
        f"{r['action']} by {r['caller']['member']} ({r['context'].get('event', '-')}, "
        f"{r['status']})"
        for r in result.records
    ]
    return "; ".join(steps) or "-"


def markdown(figures: PacemakerFigures) -> str:
    """The section, markers included."""
    m = figures.machine
    lines = [
        BEGIN,
        "## 5. Pacemaker: how long a client cannot reach the VIP",
        "",
        "A real two-node Corosync 3 + Pacemaker 2.1 cluster, each node in its own network, "
        "PID, mount and UTS namespaces, runs the recipe of "
        "[docs/node-client.md](node-client.md#pacemaker) (`node_client/ocf/configure-ha-ip.sh`): "
        "the Azure IP agent, `IPaddr2`, and an HTTP service answering with the node's name, "
        "in one group. The node client and the agent run unchanged with their defaults; the "
        "mover runs with its production settings on the local host (Microsoft's worker). "
        "The lab's VNet delivers 10.5.0.110 only to the VM whose NIC has it in the local ARM "
        "(its fabric follows ARM, not the OS). A client in its own namespace sends a request "
        "to the VIP every 20 ms on a fresh connection (0.5 s timeout) and records every "
        "answer and failure ([cluster lab](../cluster_lab/__init__.py)).",
        "",
        "| | |",
        "|---|---|",
        f"| command | `{figures.command}` |",
        f"| date, commit | {m['date']}, {m['commit']} |",
        f"| machine | {m['nproc']} cores, {m['cpu']}, {m['ram']} RAM |",
        f"| NIC update time (local ARM) | {figures.nic_update:g} s |",
        "| Corosync | knet, `token: 1000` (the lab's; Microsoft's Azure guides use 30000) |",
        f"| cluster formed in | {figures.formed_seconds:.1f} s (stack to group answering) |",
        f"| whole run took | {figures.seconds / 60:.1f} minutes |",
        "",
        "**Outage**: from the client's last answer before its first failed request to its "
        "first answer after the last one. **Floor**: what no IP mover could beat with this "
        "cluster and this Azure: the cluster's own time inside the outage before it sent its "
        "first request to the mover (stopping the service and the OS address, or noticing a "
        "dead node) plus the NIC updates' own time. **Detection**: from the event to the "
        "mover receiving the cluster's first request (for a failing monitor most of it passes "
        "while the service still answers). Medians of the runs; all from the same run.",
        "",
        "| scenario | runs | outage | floor | of which cluster | of which NIC updates "
        "| outage / floor | detection | failed requests | ends on |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, results in figures.runs.items():
        if not results:
            continue
        outage = _median([r.outage.seconds for r in results])
        floor = _median([r.floor for r in results])
        ends = sorted({r.final_node for r in results})
        lines.append(
            f"| {name} | {len(results)} | **{outage:.2f} s** | {floor:.2f} s "
            f"| {_median([r.cluster_in_outage for r in results]):.2f} s "
            f"| {_median([r.nic_update_seconds for r in results]):.2f} s "
            f"| {outage / floor:.2f}x | {_median([r.detection for r in results]):.2f} s "
            f"| {_median([float(r.outage.failed_requests) for r in results]):.0f} "
            f"| {', '.join(ends)} |"
        )
    lines += [
        "",
        "Every run: outage in seconds (floor).",
        "",
    ]
    for name, results in figures.runs.items():
        each = ", ".join(f"{r.outage.seconds:.2f} ({r.floor:.2f})" for r in results)
        lines.append(f"- {name}: {each}")
    lines += [
        "",
        "Where the outage went (first run of each; the mover's time is from the request's "
        "arrival to its end, NIC updates included; the cluster's is Pacemaker, the agent and "
        "the node client before the request arrived; the last part is the client's wait "
        "for instance metadata, `IPaddr2` and the service starting):",
        "",
    ]
    for name, results in figures.runs.items():
        if results:
            parts = " → ".join(f"{what} {seconds:.2f} s" for what, seconds in results[0].timeline())
            lines.append(f"- {name}: {parts}")
    lines += ["", "What the mover's audit history tells (first run of each):", ""]
    for name, results in figures.runs.items():
        if results:
            lines.append(f"- {name}: {_story(results[0])}")
    lines += [
        "",
        "Reading: the gap between outage and floor is what the node client, the agent and "
        "the rest of the group add; the timeline above shows where: a few tenths of a second "
        "of the cluster, the agent and the client's start before each request, each "
        "request's time in the mover within about 0.1 s of its NIC updates, and about half a "
        "second until the service answers after the last one (the client's poll of its "
        "request, instance metadata agreeing, `IPaddr2` and the service starting). A failing "
        "monitor costs a restart in place (the recipe's `migration-threshold` is 3), so its "
        "outage is a release and an acquire; its detection is the monitor interval plus the "
        "client's IMDS retries (18 s), while the service still answers. A partition without "
        "fencing is a split brain: server02 starts the group and takes the IP while server01 "
        "keeps the group; server01's next monitor may find the IP gone and take it back; the "
        "mover serializes every request, so the IP is on one NIC at any time, and once the "
        "nodes see each other again Pacemaker stops the doubled group and starts it on one "
        "node: hence several NIC updates in its floor. Production needs fencing "
        "(docs/node-client.md). Production Corosync tokens (30 s on Azure) make a crash's "
        "detection, and so its outage, about 30 s longer. The lab's VNet delivers an address "
        "within 50 ms of ARM reporting the NIC update `Succeeded` (the fabric polls ARM); "
        "Azure's dataplane can lag behind `Succeeded`, which would lengthen every outage "
        "here, not its floor.",
        END,
    ]
    return "\n".join(lines)


def carry_over(old: str, new: str) -> str:
    """``new`` with the Pacemaker section of ``old`` (if any) kept, before the caveats."""
    if BEGIN not in old or END not in old:
        return new
    block = old[old.index(BEGIN) : old.index(END) + len(END)]
    return insert(new, block)


def insert(text: str, block: str) -> str:
    """``text`` with ``block`` replacing its Pacemaker section, or added before the caveats
    ("## What these figures are not"), or at the end."""
    if BEGIN in text and END in text:
        return text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    anchor = "## What these figures are not"
    if anchor in text:
        at = text.index(anchor)
        return text[:at] + block + "\n\n" + text[at:]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure and write the section; 2 when the lab cannot run here."""
    parser = argparse.ArgumentParser(prog="python -m bench.pacemaker", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--nic-update", type=float, default=NIC_UPDATE, help="seconds")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"subset of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    reason = lab_unavailable()
    if reason:
        print(f"bench.pacemaker: {reason}", file=sys.stderr)
        return 2
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    command = f"python -m bench.pacemaker --runs {args.runs}"
    if args.nic_update != NIC_UPDATE:
        command += f" --nic-update {args.nic_update:g}"
    if set(only) != set(SCENARIOS):
        command += f" --only {','.join(only)}"
    figures = PacemakerFigures(command, machine(), args.nic_update)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ipmover-bench-pcmk-") as tmp:
        work = Path(tmp)
        stack = seed_stack(work / "stack", args.nic_update, retry_after=10)
        try:
            _log("forming the cluster")
            lab = start_lab(stack, work / "lab")
            figures.formed_seconds = time.monotonic() - started
            try:
                for name in only:
                    figures.runs[name] = []
                    for run in range(args.runs):
                        result = run_scenario(lab, name)
                        figures.runs[name].append(result)
                        _log(
                            f"{name} #{run + 1}: outage {result.outage.seconds:.2f} s, floor "
                            f"{result.floor:.2f} s, ends on {result.final_node}"
                        )
            finally:
                lab.close()
        finally:
            stack.stop()
    figures.seconds = time.monotonic() - started
    old = args.output.read_text() if args.output.exists() else ""
    args.output.write_text(insert(old, markdown(figures)))
    _log(f"wrote the Pacemaker section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
