"""The lab's decisions as plain functions: where the fabric delivers an address, how an
outage is read from the client's requests (these run anywhere), and which namespaces a new
run clears (root)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cluster_lab.fabric import Dataplane, VmPort, applied_routes
from cluster_lab.network import PREFIX, remove_stale, run
from cluster_lab.prober import Probe
from cluster_lab.scenarios import Outage, ScenarioResult, measure_outage

PORTS = [
    VmPort("server01", "server01535", "v-server01", "aa:aa:aa:aa:aa:01", "http://127.0.0.1:1"),
    VmPort("server02", "server02800", "v-server02", "aa:aa:aa:aa:aa:02", "http://127.0.0.1:2"),
]


def nic(name: str, state: str, *addresses: str) -> dict[str, Any]:
    """A NIC as ARM returns it, with these private addresses."""
    return {
        "name": name,
        "properties": {
            "provisioningState": state,
            "ipConfigurations": [{"properties": {"privateIPAddress": a}} for a in addresses],
        },
    }


def test_an_address_goes_where_a_succeeded_nic_has_it() -> None:
    state = Dataplane()
    applied_routes(
        [nic("server01535", "Succeeded", "10.5.0.101", "10.5.0.110"),
         nic("server02800", "Succeeded", "10.5.0.102")],
        state, PORTS,
    )  # fmt: skip
    assert state.routes == {
        "10.5.0.101": "server01",
        "10.5.0.110": "server01",
        "10.5.0.102": "server02",
    }


def test_a_nic_still_updating_keeps_what_was_applied_before() -> None:
    state = Dataplane()
    applied_routes([nic("server01535", "Succeeded", "10.5.0.101", "10.5.0.110")], state, PORTS)
    # ARM already shows the IP gone (the PUT was accepted), the update has not finished.
    applied_routes([nic("server01535", "Updating", "10.5.0.101")], state, PORTS)
    assert state.routes["10.5.0.110"] == "server01"
    applied_routes([nic("server01535", "Failed", "10.5.0.101")], state, PORTS)
    assert state.routes["10.5.0.110"] == "server01", "a failed update changed nothing"
    applied_routes([nic("server01535", "Succeeded", "10.5.0.101")], state, PORTS)
    assert "10.5.0.110" not in state.routes


def test_an_address_two_nics_claim_goes_nowhere() -> None:
    state = Dataplane()
    applied_routes(
        [nic("server01535", "Succeeded", "10.5.0.110"),
         nic("server02800", "Succeeded", "10.5.0.110")],
        state, PORTS,
    )  # fmt: skip
    assert "10.5.0.110" not in state.routes


def test_nics_of_other_vms_are_ignored() -> None:
    state = Dataplane()
    applied_routes([nic("server03-nic", "Succeeded", "10.5.0.110")], state, PORTS)
    assert state.routes == {}


def ok(start: float, node: str) -> Probe:
    return Probe(start, start + 0.01, node=node)


def failed(start: float) -> Probe:
    return Probe(start, start + 0.5, error="TimeoutError")


def test_the_outage_runs_from_the_last_answer_before_to_the_first_after() -> None:
    probes = [
        ok(0.0, "server01"), ok(1.0, "server01"), failed(2.0), failed(3.0),
        ok(4.0, "server02"), failed(5.0), ok(6.0, "server02"), ok(7.0, "server02"),
    ]  # fmt: skip
    outage = measure_outage(probes, since=1.5, until=10.0)
    assert outage.last_good == probes[1] and outage.first_good == probes[6]
    assert outage.failed_requests == 3
    assert outage.seconds == probes[6].end - probes[1].end


def test_no_failed_request_is_no_outage() -> None:
    probes = [ok(0.0, "server01"), ok(1.0, "server02")]
    outage = measure_outage(probes, since=0.0, until=2.0)
    assert (outage.failed_requests, outage.seconds) == (0, 0.0)


def test_failures_before_the_event_do_not_count() -> None:
    probes = [failed(0.0), ok(1.0, "server01"), ok(2.0, "server01")]
    assert measure_outage(probes, since=0.5, until=3.0).failed_requests == 0


def test_the_timeline_splits_the_outage_between_cluster_mover_and_after() -> None:
    def at(seconds: float) -> str:
        return datetime.fromtimestamp(1000.0 + seconds, UTC).isoformat()

    def record(action: str, vm: str, created: float, finished: float) -> dict[str, Any]:
        return {"action": action, "caller": {"member": vm}, "createdAt": at(created),
                "finishedAt": at(finished), "steps": []}  # fmt: skip

    outage = Outage(ok(1000.0, "server01"), ok(1007.0, "server02"), 20)
    result = ScenarioResult(
        "switchover", 1000.0, outage, 0.5, 0.49, 4.0, "server02",
        [record("release", "server01", 0.5, 2.5), record("acquire", "server02", 3.0, 5.0)],
    )  # fmt: skip
    parts = [(what, round(seconds, 2)) for what, seconds in result.timeline()]
    assert parts == [
        ("cluster until release by server01", 0.49),
        ("release by server01 in the mover", 2.0),
        ("cluster until acquire by server02", 0.5),
        ("acquire by server02 in the mover", 2.0),
        ("until the client's first answer", 2.01),
    ]
    assert round(sum(s for _, s in parts), 2) == round(outage.seconds, 2)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")
def test_namespaces_of_a_dead_run_are_removed_and_a_live_runs_kept() -> None:
    dead = 2**22 + 7  # above pid_max's default: no process has it
    while Path(f"/proc/{dead}").exists():
        dead += 1
    stale, live = f"{PREFIX}{dead}-vnet", f"{PREFIX}{os.getpid()}-probe"
    run(["ip", "netns", "add", stale])
    run(["ip", "netns", "add", live])
    try:
        removed = remove_stale()
        names = run(["ip", "netns", "list"]).stdout
        assert stale in removed and stale not in names
        assert live in names, "a running lab's namespaces are not touched"
    finally:
        run(["ip", "netns", "del", stale], check=False)
        run(["ip", "netns", "del", live], check=False)
