"""Section 1: start time and takeover time, the node client vs the vendor's scripts.

On one seed stack (the article's two servers), for each setting of the local ARM (how it
answers NIC updates, and its ``Retry-After``), each run times, side by side and
alternating which side goes first:

- **start**: 10.5.0.110 on no NIC → server01 runs start.sh;
- **takeover**: 10.5.0.110 still on server01's NIC (server01 crashed: no stop.sh ran) →
  server02 runs start.sh;
- **switchover**: 10.5.0.110 on server01 → server01 runs stop.sh, then server02 runs
  start.sh (a planned move of the failover group: the vendor scripts' best case).

"ours" is node_client/expresscluster/{start,stop}.sh (the ipmover client → the mover app);
"vendor" is bench/vendor/{start,stop}.sh with azure-cli. Each sample records the scripts'
wall time and exit codes, where the IP ended, the ARM reads and writes of the identity
that made them (the app's for ours, the VMs' for the vendor's: az runs as the VM), and the
floor: the NIC operations' own durations.

Azure was recorded answering NIC updates both ways (docs/local-azure.md): **sync**, the
PUT itself answers ``Succeeded`` once the update is done (no ``Retry-After``); **async**,
the PUT answers ``Updating`` with ``Retry-After`` and the client polls the operation. Both
are timed, async at each ``Retry-After`` asked for (sync sends none).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emulator.stack import LocalStack

from .azcli import AzNode
from .common import (
    NIC_OF,
    ArmUse,
    ScriptRun,
    arm_use,
    clear_ip,
    holders,
    median,
    principal_ids,
    put_ip_on,
    run_one,
    start_node_script,
    wait_settled,
)

CASES = ("start", "takeover", "switchover")
# How the local ARM answers NIC updates ("async"/"sync") and its Retry-After, in seconds.
Setting = tuple[str, float]
SIDES = ("ours", "vendor")
EXPECTED_HOLDER = {"start": "server01", "takeover": "server02", "switchover": "server02"}


@dataclass
class Sample:
    """One timed case on one side."""

    seconds: float
    ok: bool  # every script exited 0 and the IP ended on the expected node
    codes: list[int]
    holder: list[str]
    arm: ArmUse
    output: str = ""


@dataclass
class CaseResult:
    """All samples of one case and side at one Retry-After."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def ok_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    def median_seconds(self) -> float:
        """Median over the successful samples (failures are reported apart)."""
        return median([s.seconds for s in self.ok_samples])

    def median_of(self, attribute: str) -> float:
        values = [getattr(s.arm, attribute) for s in self.ok_samples or self.samples]
        return median(values)

    def median_floor(self) -> float:
        return median([s.arm.floor for s in self.ok_samples])


@dataclass
class TimingResult:
    """Section 1's figures: ``cases[(mode, retry_after)][case][side]``."""

    runs: dict[Setting, int]  # runs per setting
    nic_update: float
    cases: dict[Setting, dict[str, dict[str, CaseResult]]]


class Sides:
    """How each side runs a cluster script on a node."""

    def __init__(self, stack: LocalStack, work_dir: Path) -> None:
        self.stack = stack
        self.config = work_dir / "ipmover.conf"
        self.config.write_text("[ipmover]\n")
        self.az = {vm: AzNode(stack, vm, work_dir) for vm in NIC_OF}
        ids = principal_ids(stack)
        self.principals = {"ours": [ids["app"]], "vendor": [ids[vm] for vm in NIC_OF]}

    def starter(self, side: str, vm: str, script: str, event: str) -> Callable[[], object]:
        """A function that starts ``script`` on ``vm`` for ``side`` and returns the Popen."""
        if side == "ours":
            return lambda: start_node_script(self.stack, vm, script, self.config, event)
        return lambda: self.az[vm].start(script)


def _prepare(stack: LocalStack, case: str) -> None:
    """Put the IP where the case starts from, with nothing in flight."""
    wait_settled(stack.control)
    clear_ip(stack.control)
    if case in ("takeover", "switchover"):
        put_ip_on(stack.control, NIC_OF["server01"], "10.5.0.110")


def run_case(sides: Sides, case: str, side: str) -> Sample:
    """Prepare, run and check one case on one side."""
    stack = sides.stack
    _prepare(stack, case)
    seq, t0 = stack.control.last_seq(), time.time()
    runs: list[ScriptRun] = []
    if case == "start":
        runs.append(run_one("server01", "start.sh", sides.starter(side, "server01", *_start)))
    elif case == "takeover":
        runs.append(run_one("server02", "start.sh", sides.starter(side, "server02", *_failover)))
    else:
        runs.append(run_one("server01", "stop.sh", sides.starter(side, "server01", *_stop)))
        runs.append(run_one("server02", "start.sh", sides.starter(side, "server02", *_move)))
    wait_settled(stack.control)
    where = holders(stack.control)
    codes = [r.code for r in runs]
    ok = codes == [0] * len(codes) and where == [EXPECTED_HOLDER[case]]
    use = arm_use(stack.control, seq, t0, sides.principals[side])
    output = "\n".join(f"--- {r.node} {r.script} (exit {r.code})\n{r.output}" for r in runs)
    return Sample(sum(r.seconds for r in runs), ok, codes, where, use, output)


# Script and CLP_EVENT per step (the vendor scripts ignore CLP_EVENT).
_start = ("start.sh", "START")
_failover = ("start.sh", "FAILOVER")
_stop = ("stop.sh", "MOVE")
_move = ("start.sh", "MOVE")


def run(
    stack: LocalStack,
    sides: Sides,
    runs: dict[Setting, int],
    log: Callable[[str], None],
) -> TimingResult:
    """Every case, both sides, ``runs[(mode, retry_after)]`` times per setting; one stack."""
    nic_update = stack.control.settings().nic_update_seconds
    cases: dict[Setting, dict[str, dict[str, CaseResult]]] = {}
    for (mode, retry_after), count in runs.items():
        stack.control.update_settings(nic_update_mode=mode, retry_after=retry_after)
        table = {case: {side: CaseResult() for side in SIDES} for case in CASES}
        cases[(mode, retry_after)] = table
        for i in range(count):
            # Alternate which side goes first, so a drift of the machine hits both alike.
            order = SIDES if i % 2 == 0 else SIDES[::-1]
            for case in CASES:
                for side in order:
                    sample = run_case(sides, case, side)
                    table[case][side].samples.append(sample)
                    log(
                        f"{mode}, Retry-After {retry_after:g}, run {i + 1}/{count}, "
                        f"{case:10} {side:6} "
                        f"{sample.seconds:6.2f} s exit {sample.codes} IP on {sample.holder} "
                        f"reads {sample.arm.reads} writes {sample.arm.writes}"
                    )
    return TimingResult(runs, nic_update, cases)
