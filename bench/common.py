"""What every benchmark section shares: the seed stack, ARM bookkeeping, the node's start.sh.

The figures are taken on the project's local stand-ins (``emulator.stack``): the local
Azure (ARM network API with Azure's NIC update behaviour, IMDS per VM) and the local
Functions host running the mover. Both sides of every comparison run against the same
local Azure in the same run, one after the other, so the machine's noise hits both.
"""

from __future__ import annotations

import copy
import os
import platform
import signal
import statistics
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.azure.control import AzureControl
from emulator.launch import REPO_ROOT
from emulator.stack import LocalStack, start_stack

# The vendor article's cluster, which is the seed topology.
IP = "10.5.0.110"
IPCONFIG = "ipconfig2"
VMS = ("server01", "server02")
NIC_OF = {"server01": "server01535", "server02": "server02800"}
VM_OF_NIC = {nic: vm for vm, nic in NIC_OF.items()}

NODE_SCRIPTS = REPO_ROOT / "node_client" / "expresscluster"
NODE_CLIENT = REPO_ROOT / "node_client" / "ipmover.py"


def seed_stack(state_dir: Path, nic_update: float, retry_after: float) -> LocalStack:
    """The seed topology (the article's two servers, 10.5.0.110 on no NIC) and the mover."""
    return start_stack(
        state_dir,
        azure_args=["--nic-update-seconds", str(nic_update), "--retry-after", str(retry_after)],
    )


# -- where the IP is -------------------------------------------------------------------


def holders(control: AzureControl, ip: str = IP) -> list[str]:
    """VMs (or NIC names outside the seed) whose NIC has ``ip`` per ARM, settled first."""
    found = []
    for nic in control.nics():
        for config in nic["properties"]["ipConfigurations"]:
            if config["properties"].get("privateIPAddress") == ip:
                found.append(VM_OF_NIC.get(nic["name"], nic["name"]))
    return found


def wait_settled(control: AzureControl, timeout: float = 60) -> None:
    """Wait until no NIC operation is running (a failed script may leave one in flight)."""
    control.wait_for(
        lambda: all(op.get("status") != "InProgress" for op in control.operations()) or None,
        timeout=timeout,
        interval=0.2,
    )


def put_ip_on(control: AzureControl, nic_name: str, ip: str, ipconfig: str = IPCONFIG) -> None:
    """Put ``ip`` on ``nic_name`` at once (control API, no operation): a holder that then
    crashed, so nobody ran its stop script."""
    nic = control.nic(nic_name)
    configs = nic["properties"]["ipConfigurations"]
    primary = next(c for c in configs if c["properties"].get("primary"))
    extra = copy.deepcopy(primary)
    extra["name"] = ipconfig
    extra["id"] = primary["id"].rsplit("/", 1)[0] + "/" + ipconfig
    props = extra["properties"]
    props.update(primary=False, privateIPAddress=ip, privateIPAllocationMethod="Static")
    props.pop("publicIPAddress", None)
    nic["properties"]["ipConfigurations"] = [*configs, extra]
    control.set_nic(nic_name, nic)


def clear_ip(control: AzureControl, ip: str = IP) -> None:
    """Take ``ip`` off every NIC at once (control API): back to "on no NIC"."""
    for nic in control.nics():
        configs = nic["properties"]["ipConfigurations"]
        kept = [c for c in configs if c["properties"].get("privateIPAddress") != ip]
        if len(kept) != len(configs):
            nic["properties"]["ipConfigurations"] = kept
            control.set_nic(nic["name"], nic)


# -- ARM bookkeeping -------------------------------------------------------------------


@dataclass
class ArmUse:
    """ARM requests of one principal (or several) between two points of the request log."""

    reads: int = 0
    writes: int = 0
    throttled: int = 0
    errors: int = 0
    nic_updates: list[float] = field(default_factory=list)  # seconds each NIC operation took

    @property
    def floor(self) -> float:
        """The NIC operations alone, back to back: what no client can go below."""
        return sum(self.nic_updates)


def arm_use(
    control: AzureControl, since_seq: int, since_time: float, principals: Iterable[str]
) -> ArmUse:
    """ARM reads/writes/429s of ``principals`` after ``since_seq``, and the NIC operations
    started after ``since_time`` (epoch seconds)."""
    wanted = set(principals)
    use = ArmUse()
    for record in control.requests(since=since_seq, target="arm"):
        if record.principal not in wanted:
            continue
        if record.status == 429:
            use.throttled += 1
        elif record.status >= 400 or record.status == 0:
            use.errors += 1
        if record.kind == "write":
            use.writes += 1
        else:
            use.reads += 1
    for op in control.operations():
        # ``started`` and ``done_at`` are epoch seconds (the local Azure's wall clock).
        if op["started"] >= since_time and op["status"] in ("Succeeded", "Failed"):
            use.nic_updates.append(op["done_at"] - op["started"])
    return use


def principal_ids(stack: LocalStack) -> dict[str, str]:
    """Object ids of the app identity (``"app"``) and of every VM, by name."""
    ids = {"app": stack.ready.app_identity.principal_id}
    for vm in stack.control.topology()["vms"]:
        ids[vm["name"]] = vm["principal_id"]
    return ids


# -- the node client's EXPRESSCLUSTER scripts -------------------------------------------


@dataclass
class ScriptRun:
    """One run of a cluster script on one node."""

    node: str
    script: str
    code: int
    seconds: float
    output: str


def start_node_script(
    stack: LocalStack, vm: str, script: str, config: Path, event: str
) -> subprocess.Popen[str]:
    """Start node_client/expresscluster/<script> on ``vm`` (no wait)."""
    return subprocess.Popen(
        ["sh", str(NODE_SCRIPTS / script)],
        env=stack.node_env(vm, config, event, log_tag="ipmover-bench"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: see run_concurrently
    )


def run_concurrently(starters: Sequence[tuple[str, str, Any]], timeout: float) -> list[ScriptRun]:
    """Start every ``(node, script, start())`` at once; wait for all; time each from its start.

    ``start`` returns a Popen. Bounded by ``timeout`` (a stuck script is killed)."""
    started = []
    try:
        for node, script, start in starters:
            started.append((node, script, time.monotonic(), start()))
        runs = []
        for node, script, t0, process in started:
            try:
                output, _ = process.communicate(timeout=max(1.0, t0 + timeout - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                output += f"\n[bench] killed after {timeout} s"
            # communicate() returns when the script exits, so its time is taken right away.
            runs.append(ScriptRun(node, script, process.returncode, time.monotonic() - t0, output))
    except BaseException:
        # Interrupted (Ctrl-C): leave no script behind. Each runs in its own session, so
        # its process group is the script and what it started (the client, az).
        for _, _, _, process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        raise
    return runs


def run_one(node: str, script: str, start: Any, timeout: float = 300) -> ScriptRun:
    """Run one script to its end and time it."""
    return run_concurrently([(node, script, start)], timeout)[0]


# -- figures ---------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """Median, NaN when there is nothing to take it of."""
    return statistics.median(values) if values else float("nan")


def ratio(value: float, base: float) -> float:
    """``value / base``, NaN when the base is not positive."""
    return value / base if base > 0 else float("nan")


def machine() -> dict[str, str]:
    """What the figures were taken on: cores, CPU model, RAM, Python, date, commit."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    commit = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (work tree has uncommitted changes)"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit,
    }


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip()
