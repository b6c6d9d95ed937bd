"""Section 2: races, the vendor's scripts vs ours, each scenario a few times.

- **both start**: 10.5.0.110 on no NIC; both servers run start.sh at the same moment (a
  split brain, or an operator starting the group twice);
- **stop vs start**: the IP on server01; server01's stop.sh and server02's start.sh run at
  the same moment (a stop that ran late, quick back-to-back moves);
- **crashed holder**: the IP still on server01's NIC (server01 died, no stop.sh);
  server02 runs start.sh.

The scripts of one scenario run concurrently as subprocesses on the same local Azure.
Each run ends in one outcome (first that applies):

- *IP lost*: the IP is on no NIC;
- *IP on the wrong node*: it is on a node that should not have it (the stopping node, or
  a node whose start failed), or on two;
- *failed*: it is where it should be, but a script exited non-zero (EXPRESSCLUSTER then
  counts an activation or deactivation failure, and may fail the group over again);
- *succeeded*: every script exited 0 and the IP is where it should be.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .common import NIC_OF, ScriptRun, clear_ip, holders, put_ip_on, run_concurrently, wait_settled
from .timing import SIDES, Sides

OUTCOMES = ("succeeded", "failed", "IP on the wrong node", "IP lost")


@dataclass(frozen=True)
class Scenario:
    """A race: where the IP starts, which scripts run at once, where it must end."""

    name: str
    description: str
    start_on: str | None  # VM holding the IP before, or None
    scripts: tuple[tuple[str, str, str], ...]  # (vm, script, CLP_EVENT)
    # Where the IP must end: these VMs, or None for "on exactly one node whose start.sh
    # exited 0".
    expected: tuple[str, ...] | None


SCENARIOS = (
    Scenario(
        "both start",
        "IP on no NIC; start.sh on both servers at once",
        None,
        (("server01", "start.sh", "START"), ("server02", "start.sh", "START")),
        None,
    ),
    Scenario(
        "stop vs start",
        "IP on server01; its stop.sh and server02's start.sh at once",
        "server01",
        (("server01", "stop.sh", "MOVE"), ("server02", "start.sh", "MOVE")),
        ("server02",),
    ),
    Scenario(
        "crashed holder",
        "IP still on crashed server01's NIC; start.sh on server02",
        "server01",
        (("server02", "start.sh", "FAILOVER"),),
        ("server02",),
    ),
)


@dataclass
class RaceRun:
    """One run of a scenario on one side."""

    outcome: str
    codes: dict[str, int]
    holder: list[str]
    seconds: float
    output: str


@dataclass
class RaceResult:
    """Every run, by scenario name and side."""

    runs: int
    results: dict[str, dict[str, list[RaceRun]]] = field(default_factory=dict)

    def counts(self, scenario: str, side: str) -> Counter[str]:
        return Counter(r.outcome for r in self.results[scenario][side])


def classify(scenario: Scenario, runs: list[ScriptRun], where: list[str]) -> str:
    """The outcome of one run (see the module's docstring)."""
    codes = {r.node: r.code for r in runs}
    if not where:
        return "IP lost"
    if scenario.expected is None:
        started_ok = {r.node for r in runs if r.script == "start.sh" and r.code == 0}
        right_place = len(where) == 1 and where[0] in started_ok
    else:
        right_place = sorted(where) == sorted(scenario.expected)
    if not right_place:
        return "IP on the wrong node"
    if any(code != 0 for code in codes.values()):
        return "failed"
    return "succeeded"


def run_scenario(sides: Sides, scenario: Scenario, side: str) -> RaceRun:
    """Set the IP up, start the scenario's scripts at once, wait, classify."""
    control = sides.stack.control
    wait_settled(control)
    clear_ip(control)
    if scenario.start_on:
        put_ip_on(control, NIC_OF[scenario.start_on], "10.5.0.110")
    starters = [
        (vm, script, sides.starter(side, vm, script, event))
        for vm, script, event in scenario.scripts
    ]
    runs = run_concurrently(starters, timeout=300)
    # A failed vendor script may leave a NIC update in flight: judge the settled state.
    wait_settled(control)
    where = holders(control)
    output = "\n".join(f"--- {r.node} {r.script} (exit {r.code})\n{r.output}" for r in runs)
    return RaceRun(
        classify(scenario, runs, where),
        {f"{r.node} {r.script}": r.code for r in runs},
        where,
        max(r.seconds for r in runs),
        output,
    )


def run(sides: Sides, runs: int, log: Callable[[str], None]) -> RaceResult:
    """Each scenario ``runs`` times on each side (alternating sides)."""
    result = RaceResult(runs)
    for scenario in SCENARIOS:
        result.results[scenario.name] = {side: [] for side in SIDES}
        for i in range(runs):
            order = SIDES if i % 2 == 0 else SIDES[::-1]
            for side in order:
                race = run_scenario(sides, scenario, side)
                result.results[scenario.name][side].append(race)
                log(
                    f"race {scenario.name:14} run {i + 1}/{runs} {side:6} -> {race.outcome}: "
                    f"exit {race.codes}, IP on {race.holder or 'no NIC'} ({race.seconds:.1f} s)"
                )
    return result
