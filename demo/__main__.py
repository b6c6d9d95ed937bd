"""``make demo``: the vendor article's "Checking the Operation", on the local stand-ins.

Starts the local Azure (the article's topology: server01, server02, 10.5.0.110
as ipconfig2) and the local Functions host running the mover, then plays:

1. the failover group starts on server01 (EXPRESSCLUSTER runs start.sh there);
2. it fails over to server02;
3. both servers run start.sh at the same moment (split brain): the mover
   serializes them, and the IP ends on exactly one NIC;

printing each node's log lines, the holder per ARM after each step and the
IP's audit history. Exits 0 only if every step ended as expected; stops
everything it started.
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


def main() -> int:
    """Run the three steps; 0 when each ended as expected."""
    with tempfile.TemporaryDirectory(prefix="ipmover-demo-") as tmp:
        print("starting the local Azure and the local Functions host ...", flush=True)
        stack = start_stack(
            Path(tmp),
            azure_args=["--nic-update-seconds", NIC_UPDATE_SECONDS, "--retry-after", "10"],
        )
        try:
            return _play(stack, Path(tmp))
        finally:
            stack.stop()


def _play(stack: LocalStack, tmp: Path) -> int:
    config = tmp / "ipmover.conf"
    config.write_text("[ipmover]\n")
    print(f"mover API at {stack.api}; NIC updates take {NIC_UPDATE_SECONDS} s\n")
    checks: list[tuple[str, bool]] = []

    _title("1. start the failover group on server01")
    codes = _run_nodes(stack, config, {"server01": "START"})
    checks.append(
        ("start on server01", codes == {"server01": 0} and _holders(stack) == ["server01"])
    )

    _title("2. fail over to server02")
    codes = _run_nodes(stack, config, {"server02": "FAILOVER"})
    checks.append(
        ("failover to server02", codes == {"server02": 0} and _holders(stack) == ["server02"])
    )

    _title("3. both servers start the group at once")
    codes = _run_nodes(stack, config, {"server01": "START", "server02": "START"})
    holders = _holders(stack)
    checks.append(
        ("both at once: both succeed, one holder", set(codes.values()) == {0} and len(holders) == 1)
    )

    _title("audit history of 10.5.0.110 (newest first)")
    _print_history(stack)
    print()
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(ok for _, ok in checks) else 1


def _run_nodes(stack: LocalStack, config: Path, events: dict[str, str]) -> dict[str, int]:
    """Run start.sh on each server at once, streaming their lines; return the exit codes."""
    processes = {}
    for vm, event in events.items():
        env = stack.node_env(vm, config, event, log_tag="ipmover-demo")
        processes[vm] = subprocess.Popen(
            ["sh", str(SCRIPTS / "start.sh")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    readers = [
        threading.Thread(target=_echo, args=(vm, p.stdout), daemon=True)
        for vm, p in processes.items()
    ]
    for reader in readers:
        reader.start()
    codes = {vm: p.wait(timeout=300) for vm, p in processes.items()}
    for reader in readers:
        reader.join(timeout=5)
    print(f"-> exit codes {codes}; 10.5.0.110 is on {_holders(stack) or 'no NIC'} per ARM")
    return codes


_print_lock = threading.Lock()


def _echo(vm: str, stream) -> None:
    for line in stream:
        with _print_lock:
            print(f"  [{vm}] {line.rstrip()}", flush=True)


def _holders(stack: LocalStack) -> list[str]:
    found = []
    for nic in stack.control.nics():
        for config in nic["properties"]["ipConfigurations"]:
            if config["properties"].get("privateIPAddress") == IP:
                found.append(NICS.get(nic["name"], nic["name"]))
    return found


def _print_history(stack: LocalStack) -> None:
    token = stack.vm_token("server01")
    records = requests.get(
        f"{stack.api}/ips/{IP}/history",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()["records"]
    print(
        f"{'finished':12} {'caller':9} {'event':9} {'status':9} {'waited':>7} {'moved':>7}  steps"
    )
    for r in records:
        waited = _seconds(r["createdAt"], r["lockedAt"])
        moved = _seconds(r["lockedAt"], r["finishedAt"])
        steps = " > ".join(s["name"] for s in r["steps"])
        print(
            f"{r['finishedAt'][11:23]:12} {r['caller']['member']:9} "
            f"{r['context'].get('event', ''):9} {r['status']:9} {waited:>7} {moved:>7}  {steps}"
        )


def _seconds(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    from mover.records import parse_iso

    return f"{(parse_iso(end) - parse_iso(start)).total_seconds():.2f}s"


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)), flush=True)
    time.sleep(0)


if __name__ == "__main__":
    sys.exit(main())
