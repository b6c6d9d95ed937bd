"""``make demo``: the vendor article's "Checking the Operation", on the local stand-ins.

Starts the local Azure (the article's topology: server01, server02, 10.5.0.110
as ipconfig2) and the local Functions host running the mover, then plays what a
cluster goes through, running the EXPRESSCLUSTER scripts and the node client as
the servers would:

0. ``ipmover doctor`` on server01: everything a move needs, checked, nothing moved;
1. the failover group starts on server01 (start.sh);
2. a planned switchover to server02: stop.sh on server01, then start.sh on server02;
3. server02 goes down holding the IP: failover to server01 (start.sh, FAILOVER);
4. both servers start the group at once (split brain): both start.sh exit 0, the
   mover serializes them, the history flags the second, and the losing server's
   monitor (monitor.sh) reports the loss and who took the IP;
5. one failure: server02's managed identity is removed, start.sh exits 9;
6. ``ipmover history``, as an operator would read it on a node.

Prints each server's log lines and the holder per ARM after each step. Exits 0
only if every step ended as expected; stops everything it started.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from emulator.launch import REPO_ROOT
from emulator.stack import LocalStack, start_stack

IP = "10.5.0.110"
NICS = {"server01535": "server01", "server02800": "server02"}
SCRIPTS = REPO_ROOT / "node_client" / "expresscluster"
CLIENT = REPO_ROOT / "node_client" / "ipmover.py"
# Azure-like NIC updates, shortened so the demo takes seconds, not minutes.
NIC_UPDATE_SECONDS = "1.5"
# An acquire that takes the IP from a member that acquired it this recently is flagged as a
# possible split brain (limits.splitBrainWindowSeconds, 60 s by default). Shortened like the
# NIC updates, and the demo lets that much time pass between events that are minutes apart
# in a real cluster (a failover comes after the monitor's interval and retries).
WINDOW_SECONDS = 3.0

SIMULATED = (
    "What is simulated: Azure (the network API, each VM's instance metadata, Entra ID's "
    "tokens) runs locally as stand-ins, and server01/server02 are processes running the "
    "EXPRESSCLUSTER scripts and the ipmover client as each VM's identity; the mover itself "
    "runs unchanged in a local Functions host with Microsoft's Python worker. "
    f"NIC updates take {NIC_UPDATE_SECONDS} s here (about 10 s in Azure), and the split-brain "
    f"window is {WINDOW_SECONDS:.0f} s (60 s by default)."
)


def main() -> int:
    """Run the steps; 0 when each ended as expected."""
    print(SIMULATED, flush=True)
    with tempfile.TemporaryDirectory(prefix="ipmover-demo-") as tmp:
        print("starting the local Azure and the local Functions host ...", flush=True)
        stack = start_stack(
            Path(tmp),
            azure_args=["--nic-update-seconds", NIC_UPDATE_SECONDS, "--retry-after", "10"],
            limits={"splitBrainWindowSeconds": WINDOW_SECONDS},
        )
        try:
            return _play(stack, Path(tmp))
        finally:
            stack.stop()


def _play(stack: LocalStack, tmp: Path) -> int:
    config = tmp / "ipmover.conf"
    config.write_text("[ipmover]\n")
    print(f"mover API at {stack.api}\n")
    checks: list[tuple[str, bool]] = []

    _title("0. ipmover doctor on server01 (checks, moves nothing)")
    code = _client(stack, config, "server01", "doctor")
    checks.append(("doctor passes on server01", code == 0))

    _title("1. start the failover group on server01")
    codes = _run(stack, config, {"server01": ("start.sh", "START")})
    checks.append(
        ("start on server01", codes == {"server01": 0} and _holders(stack) == ["server01"])
    )

    _title("2. planned switchover to server02: stop.sh on server01, then start.sh on server02")
    stopped = _run(stack, config, {"server01": ("stop.sh", "STOP")})
    started = _run(stack, config, {"server02": ("start.sh", "START")})
    checks.append(
        (
            "switchover to server02",
            stopped == {"server01": 0} and started == {"server02": 0}
            and _holders(stack) == ["server02"],
        )
    )  # fmt: skip

    _later()
    _title("3. server02 goes down holding the IP: failover to server01")
    codes = _run(stack, config, {"server01": ("start.sh", "FAILOVER")})
    checks.append(
        ("failover to server01", codes == {"server01": 0} and _holders(stack) == ["server01"])
    )

    _later()
    _title("4. split brain: both servers start the group at once")
    codes = _run(
        stack, config, {"server01": ("start.sh", "START"), "server02": ("start.sh", "START")}
    )
    holders = _holders(stack)
    print("   each server's monitor (monitor.sh) a moment later:")
    monitors = _run(
        stack, config, {"server01": ("monitor.sh", None), "server02": ("monitor.sh", None)}
    )
    winner = holders[0] if len(holders) == 1 else None
    loser = {"server01": "server02", "server02": "server01"}.get(winner or "")
    split = _newest_record(stack).get("splitBrain") or {}
    checks.append(
        (
            "both start.sh exit 0, one holder, the loser's monitor reports the loss",
            set(codes.values()) == {0} and winner is not None
            and monitors == {winner: 0, loser: 7},
        )
    )  # fmt: skip
    checks.append(
        (
            "the audit records the split brain",
            split.get("tookFrom") == loser,
        )
    )

    _title("5. a failure: server02's managed identity was removed, its start.sh fails")
    stack.control.set_identity("server02", False)
    try:
        codes = _run(stack, config, {"server02": ("start.sh", "FAILOVER")})
    finally:
        stack.control.set_identity("server02", True)
    print("   exit code 9: no managed identity on the VM (ipmover --help lists every code)")
    checks.append(
        (
            "start.sh without an identity exits 9, the IP stays",
            codes == {"server02": 9} and _holders(stack) == holders,
        )
    )

    _title("6. ipmover history (newest first), as run on server01")
    code = _client(stack, config, "server01", "history", "--limit", "10")
    checks.append(("ipmover history", code == 0))

    print()
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(ok for _, ok in checks) else 1


def _run(
    stack: LocalStack, config: Path, scripts: dict[str, tuple[str, str | None]]
) -> dict[str, int]:
    """Run an EXPRESSCLUSTER script on each server at once, streaming their lines."""
    processes = {}
    for vm, (script, event) in scripts.items():
        env = stack.node_env(vm, config, event, log_tag="ipmover-demo")
        processes[vm] = subprocess.Popen(
            ["sh", str(SCRIPTS / script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    codes = _stream(processes)
    print(f"-> exit codes {codes}; {IP} is on {_holders(stack) or 'no NIC'} per ARM", flush=True)
    return codes


def _client(stack: LocalStack, config: Path, vm: str, *args: str) -> int:
    """Run the node client itself on ``vm``."""
    env = stack.node_env(vm, config)
    print(f"   $ ipmover {' '.join(args)}", flush=True)
    process = subprocess.Popen(
        [sys.executable, str(CLIENT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    code = _stream({vm: process})[vm]
    print(f"-> exit code {code}", flush=True)
    return code


def _stream(processes: dict[str, subprocess.Popen[str]]) -> dict[str, int]:
    readers = [
        threading.Thread(target=_echo, args=(vm, p.stdout), daemon=True)
        for vm, p in processes.items()
    ]
    for reader in readers:
        reader.start()
    codes = {vm: p.wait(timeout=300) for vm, p in processes.items()}
    for reader in readers:
        reader.join(timeout=5)
    return codes


_print_lock = threading.Lock()


def _echo(vm: str, stream) -> None:
    for line in stream:
        with _print_lock:
            print(f"  [{vm}] {line.rstrip()}", flush=True)


def _newest_record(stack: LocalStack) -> dict:
    """The IP's newest audit record, read as a member reads it."""
    answer = requests.get(
        f"{stack.api}/ips/{IP}/history?limit=1",
        headers={"Authorization": f"Bearer {stack.vm_token('server01')}"},
        timeout=30,
    )
    answer.raise_for_status()
    records = answer.json()["records"]
    return records[0] if records else {}


def _holders(stack: LocalStack) -> list[str]:
    found = []
    for nic in stack.control.nics():
        for config in nic["properties"]["ipConfigurations"]:
            if config["properties"].get("privateIPAddress") == IP:
                found.append(NICS.get(nic["name"], nic["name"]))
    return found


def _later() -> None:
    """Let the split-brain window pass: these events are minutes apart in a real cluster."""
    print(f"\n({WINDOW_SECONDS + 1:.0f} s later)", flush=True)
    time.sleep(WINDOW_SECONDS + 1)


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
