"""Failovers staged on the lab, and what the client saw of each.

Each scenario starts with the group on server01 and the client answered by server01, does
one thing to the cluster, waits until the IP and the group have settled on one node, and
returns a ``ScenarioResult``: the client's outage window (last answer before the first
failed request → first answer after the last one, both read from the answering node's
name) beside its floor, which no client could beat with this cluster and this Azure:

* the cluster's **detection**: from the event to the mover receiving the first request
  the cluster sent because of it (its ``createdAt``): Pacemaker noticing, deciding, and
  stopping what ran before the IP agent. Only the part of it inside the outage counts
  toward the floor (``cluster_in_outage``): while a monitor retries, the service still
  answers;
* the **NIC updates' own time**: each update step of those requests (``remove_ip_config``,
  ``add_ip_config`` that changed a NIC) costs the local ARM's update time.

``restore()`` brings the group back to server01 between scenarios.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cluster_lab.lab import GROUP, NODES, Lab
from cluster_lab.pacemaker import wait_for
from cluster_lab.prober import Probe

__all__ = [
    "SCENARIOS",
    "Outage",
    "ScenarioResult",
    "measure_outage",
    "restore",
    "run_scenario",
]

UPDATE_STEPS = ("remove_ip_config", "add_ip_config")
SETTLE_TIMEOUT = 90.0


@dataclass
class Outage:
    """The client's view: the last answer before the first failure, the first after the last."""

    last_good: Probe | None
    first_good: Probe | None
    failed_requests: int

    @property
    def seconds(self) -> float:
        """From the last answer before to the first answer after (0: no request failed)."""
        if self.failed_requests == 0 or self.last_good is None or self.first_good is None:
            return 0.0
        return self.first_good.end - self.last_good.end


@dataclass
class ScenarioResult:
    """One run of one scenario."""

    name: str
    event_at: float
    outage: Outage
    detection: float  # event -> the mover received the cluster's first request
    cluster_in_outage: float  # last answer before the outage -> that first request
    nic_update_seconds: float
    final_node: str
    records: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    @property
    def floor(self) -> float:
        """The outage no mover could beat: the cluster's time inside the outage before its
        first request, plus the NIC updates' own time."""
        return self.cluster_in_outage + self.nic_update_seconds

    def timeline(self) -> list[tuple[str, float]]:
        """Where the outage went: (what, seconds) from the client's last answer, through
        each request of the cluster to the mover (its time there, and the cluster's time
        before it), to the client's first answer after."""
        last, first = self.outage.last_good, self.outage.first_good
        if last is None or first is None:
            return []
        parts, at = [], last.end
        for record in self.records:
            created, finished = _timestamp(record["createdAt"]), _timestamp(record["finishedAt"])
            if finished <= at or created >= first.end:
                continue  # before the outage (e.g. a split brain's takeover) or after it
            who = f"{record['action']} by {record['caller']['member']}"
            parts.append((f"cluster until {who}", max(created - at, 0.0)))
            parts.append((f"{who} in the mover", finished - max(created, at)))
            at = finished
        parts.append(("until the client's first answer", first.end - at))
        return parts


def measure_outage(probes: list[Probe], since: float, until: float) -> Outage:
    """The outage among the requests started in [``since``, ``until``]; the window's ends
    are the answers just outside the first and last failure (before ``since`` if need be)."""
    inside = [p for p in probes if since <= p.start <= until]
    failures = [p for p in inside if p.node is None]
    if not failures:
        return Outage(None, None, 0)
    first_fail, last_fail = failures[0], failures[-1]
    before = [p for p in probes if p.node is not None and p.start < first_fail.start]
    after = [p for p in probes if p.node is not None and p.start > last_fail.start]
    return Outage(before[-1] if before else None, after[0] if after else None, len(failures))


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _records_since(lab: Lab, since: float) -> list[dict[str, Any]]:
    records = [r for r in lab.history() if _timestamp(r["createdAt"]) >= since]
    return sorted(records, key=lambda r: _timestamp(r["createdAt"]))


def _settled(lab: Lab, expected: str | None, since: float) -> str | None:
    """The node everything agrees on, or None: Pacemaker runs the group there alone, ARM
    has the IP on its NIC alone (Succeeded), the fabric delivers there, the client gets
    answers from it (the last three requests), and no move is queued or running."""
    node = lab.group_on()
    if node is None or (expected is not None and node != expected):
        return None
    holders = lab.holders()
    if holders != [(lab.nic_of[node], "Succeeded")]:
        return None
    events = lab.fabric_events()
    if not events or events[-1]["vm"] != node:
        return None
    recent = lab.probes(since)[-3:]
    if len(recent) < 3 or any(p.node != node for p in recent):
        return None
    return None if lab.moves_pending() else node


def _wait_settled(lab: Lab, since: float, expected: str | None = None) -> str:
    return wait_for(
        lambda: _settled(lab, expected, since),
        SETTLE_TIMEOUT,
        f"the group, the IP and the client settled on {expected or 'one node'}",
        0.2,
    )


def _wait_records(lab: Lab, since: float, count: int) -> list[dict[str, Any]]:
    """Until the history has ``count`` finished records since ``since`` (a move the cluster
    started is recorded once it has finished)."""
    return wait_for(
        lambda: (lambda r: r if len(r) >= count else None)(_records_since(lab, since)),
        30,
        f"{count} history records",
        0.2,
    )


def _nic_update_time(lab: Lab, records: list[dict[str, Any]]) -> float:
    per_update = float(lab.stack.control.settings().nic_update_seconds)
    updates = sum(
        1
        for record in records
        for step in record.get("steps", [])
        # A step with no ARM operation changed nothing (the NIC was already right).
        if step.get("name") in UPDATE_STEPS and step.get("status") == "succeeded"
        and step.get("armOperationId")
    )  # fmt: skip
    return updates * per_update


def _result(
    lab: Lab, name: str, event_at: float, final: str, records: list[dict[str, Any]]
) -> ScenarioResult:
    settled_at = time.time()
    outage = measure_outage(lab.probes(event_at - 5), event_at, settled_at)
    first_request = _timestamp(records[0]["createdAt"]) if records else event_at
    down_since = outage.last_good.end if outage.last_good is not None else event_at
    return ScenarioResult(
        name, event_at, outage, max(first_request - event_at, 0.0),
        max(first_request - down_since, 0.0), _nic_update_time(lab, records), final, records,
    )  # fmt: skip


# -- the scenarios --------------------------------------------------------------------------


def switchover(lab: Lab) -> ScenarioResult:
    """Planned: ``standby`` server01; the group stops there and starts on server02."""
    assert lab.cluster is not None
    event_at = time.time()
    lab.cluster.standby("server01", True)
    final = _wait_settled(lab, event_at, "server02")
    records = _wait_records(lab, event_at, 2)
    lab.cluster.standby("server01", False)
    return _result(lab, "switchover", event_at, final, records)


def crash(lab: Lab) -> ScenarioResult:
    """Unplanned: every process of server01 killed at once (no stop, no release)."""
    assert lab.cluster is not None
    event_at = time.time()
    lab.cluster.crash("server01")
    final = _wait_settled(lab, event_at, "server02")
    records = _wait_records(lab, event_at, 1)
    # The crashed VM stays down; restore() boots it before the next scenario.
    return _result(lab, "crash", event_at, final, records)


def monitor_failure(lab: Lab) -> ScenarioResult:
    """server01's instance metadata fails 5 requests in a row: the agent's next monitor
    exhausts its retries (18 s) and fails; Pacemaker recovers the group (with
    ``migration-threshold`` 3: a restart in place, stop then start on server01)."""
    assert lab.cluster is not None
    event_at = time.time()
    lab.stack.control.imds_fail_next(
        5, 500, vm="server01", path="/metadata/instance/network", code="InternalServerError"
    )
    # The recovery has begun once the cluster asks the mover for something.
    _wait_records(lab, event_at, 1)
    final = _wait_settled(lab, event_at)
    records = _wait_records(lab, event_at, 2)
    # The failure stays recorded (a user sees it in crm_mon); restore() cleans it up.
    return _result(lab, "monitor failure", event_at, final, records)


def partition(lab: Lab) -> ScenarioResult:
    """Split brain: server01 and server02 stop hearing each other (the VNet drops their
    traffic, the client still reaches both). With no fencing, server02 starts the group
    while server01 keeps it: both ask for the IP, the mover serializes them. Once server02
    has it the partition heals; Pacemaker finds the group active twice and restarts it on
    one node."""
    assert lab.cluster is not None
    event_at = time.time()
    lab.network.partition("server01", "server02", True)
    try:
        wait_for(
            lambda: (lab.nic_of["server02"], "Succeeded") in lab.holders(),
            60,
            "server02 to take the IP during the partition",
            0.2,
        )
    finally:
        lab.network.partition("server01", "server02", False)
    final = _wait_settled(lab, event_at)
    records = _records_since(lab, event_at)
    return _result(lab, "partition", event_at, final, records)


SCENARIOS = {
    "switchover": switchover,
    "crash": crash,
    "monitor failure": monitor_failure,
    "partition": partition,
}


def run_scenario(lab: Lab, name: str) -> ScenarioResult:
    """Run one scenario from the group on server01 (restoring that first if need be)."""
    restore(lab)
    return SCENARIOS[name](lab)


def restore(lab: Lab) -> None:
    """The group back on server01 with both nodes online and no failures recorded."""
    assert lab.cluster is not None
    cluster = lab.cluster
    for node in NODES:
        if cluster.processes[node].init_pid() is None:
            cluster.start(node)
    cluster.wait_online("server02", set(NODES), timeout=60)
    cluster.run("server02", "crm_resource", "--cleanup", "--resource", GROUP)
    # A cleanup re-probes the group: let the cluster finish what it does before deciding,
    # or the scenario's event would queue behind the probes.
    cluster.run("server02", "crm_resource", "--wait", "--timeout", "60s")
    where = _wait_settled(lab, time.time() - 1)
    if where != "server01":
        since = time.time()
        cluster.run("server02", "crm_resource", "--move", "--resource", GROUP, "--node", "server01")
        try:
            _wait_settled(lab, since, "server01")
        finally:
            cluster.run("server02", "crm_resource", "--clear", "--resource", GROUP)
        cluster.run("server02", "crm_resource", "--wait", "--timeout", "60s")
