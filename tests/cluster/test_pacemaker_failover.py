"""A real Pacemaker cluster fails over, and a client measures how long the VIP was gone.

Two nodes (server01, server02) run Corosync and Pacemaker with the recipe of
docs/node-client.md: the Azure IP agent, IPaddr2, and a service answering with the
node's name, in one group. The node client and the agent run unchanged with their
defaults; the VNet delivers 10.5.0.110 only where the local ARM has it. A client in its
own namespace sends requests to the VIP all along. The scenarios run in order, each from
the group on server01 (``cluster_lab.scenarios``).
"""

from __future__ import annotations

import time

from cluster_lab.lab import VIP, Lab
from cluster_lab.network import run
from cluster_lab.pacemaker import wait_for
from cluster_lab.scenarios import ScenarioResult, measure_outage, run_scenario
from tests.mover.conftest import NIC


def _story(result: ScenarioResult) -> list[tuple[str, str, str, str]]:
    """(action, caller, context event, status) of each audit record, oldest first."""
    return [
        (r["action"], r["caller"]["member"], r["context"].get("event", ""), r["status"])
        for r in result.records
    ]


def _assert_ends_on(lab: Lab, result: ScenarioResult, node: str) -> None:
    """What a user would check: the IP on exactly one NIC, settled; the group there; the
    client answered by that node; the outage no shorter than the NIC updates it waited for."""
    assert result.final_node == node
    assert lab.holders() == [(NIC[node], "Succeeded")]
    assert lab.group_on() == node
    for other in NIC:
        up = lab.cluster is not None and lab.cluster.processes[other].init_pid() is not None
        if other != node and up:
            assert not lab.os_has_vip(other), f"{other}'s IPaddr2 must have stopped"
    assert result.outage.failed_requests > 0
    first_good = result.outage.first_good
    assert first_good is not None and first_good.node == node
    assert {p.node for p in lab.probes(first_good.start)} == {node}, "answered ever since"
    assert result.outage.seconds >= result.floor >= result.nic_update_seconds > 0
    print(
        f"\n{result.name}: outage {result.outage.seconds:.2f}s "
        f"({result.outage.failed_requests} failed requests); floor {result.floor:.2f}s = "
        f"cluster {result.cluster_in_outage:.2f}s + NIC updates "
        f"{result.nic_update_seconds:.2f}s; detection {result.detection:.2f}s"
    )


def test_the_cluster_starts_the_group_on_server01_and_the_client_reaches_the_vip(
    lab: Lab,
) -> None:
    assert lab.group_on() == "server01"
    assert lab.holders() == [(NIC["server01"], "Succeeded")]
    assert lab.answering(time.time() - 1) == "server01"
    first = lab.history()[-1]
    assert (first["action"], first["caller"]["member"], first["status"]) == (
        "acquire",
        "server01",
        "succeeded",
    )
    assert first["context"] == {"event": "START", "resource": "vip-azure", "server": "server01"}


def test_the_vnet_delivers_the_vip_where_arm_has_it_whatever_the_os_configured(
    lab: Lab,
) -> None:
    assert lab.cluster is not None
    lab.cluster.run("server01", "crm_attribute", "--name", "maintenance-mode", "--update", "true")
    server02 = lab.network.netns("server02")
    run(["ip", "-n", server02, "addr", "add", f"{VIP}/24", "dev", "eth0"])
    nic = lab.stack.control.nic(NIC["server01"])
    try:
        # server02's OS has the address too: the traffic still goes where ARM has it.
        since = time.time()
        wait_for(lambda: len(lab.probes(since)) >= 10, 10, "10 requests")
        assert {p.node for p in lab.probes(since)} == {"server01"}

        # ARM takes it off server01's NIC: server01's OS still has it, its server still
        # listens, and the client gets nothing.
        without = {**nic, "properties": {**nic["properties"]}}
        without["properties"]["ipConfigurations"] = [
            c
            for c in nic["properties"]["ipConfigurations"]
            if c["properties"].get("privateIPAddress") != VIP
        ]
        cut = time.time()
        lab.stack.control.set_nic(NIC["server01"], without)
        wait_for(lambda: [p for p in lab.probes(cut + 0.2) if p.end > cut + 1.0], 10, "a second")
        assert all(p.node is None for p in lab.probes(cut + 0.2)), "the VNet must drop it"
        assert "inet 10.5.0.110/24" in lab.cluster.run("server01", "ip", "addr").stdout
    finally:
        lab.stack.control.set_nic(NIC["server01"], nic)
        run(["ip", "-n", server02, "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)
        lab.cluster.run("server01", "crm_attribute", "--name", "maintenance-mode", "--delete")
    lab.wait_answering("server01", timeout=10)
    back = time.time()
    outage = measure_outage(lab.probes(cut), cut, back)
    assert outage.failed_requests > 0


def test_a_planned_switchover_moves_the_vip_to_server02(lab: Lab) -> None:
    result = run_scenario(lab, "switchover")
    _assert_ends_on(lab, result, "server02")
    assert _story(result) == [
        ("release", "server01", "STOP", "succeeded"),
        ("acquire", "server02", "START", "succeeded"),
    ]


def test_a_crashed_holder_is_replaced_by_server02(lab: Lab) -> None:
    result = run_scenario(lab, "crash")
    _assert_ends_on(lab, result, "server02")
    # Nobody released: server02 took the IP off the dead node's NIC.
    assert _story(result) == [("acquire", "server02", "START", "succeeded")]
    assert [n.rsplit("/", 1)[-1] for n in result.records[0]["fromNics"]] == [NIC["server01"]]


def test_a_failing_monitor_restarts_the_group(lab: Lab) -> None:
    result = run_scenario(lab, "monitor failure")
    # migration-threshold 3: the first failure restarts the group where it was.
    _assert_ends_on(lab, result, "server01")
    assert _story(result) == [
        ("release", "server01", "STOP", "succeeded"),
        ("acquire", "server01", "START", "succeeded"),
    ]


def test_a_partition_without_fencing_ends_with_the_vip_on_one_node(lab: Lab) -> None:
    result = run_scenario(lab, "partition")
    _assert_ends_on(lab, result, result.final_node)
    story = _story(result)
    # During the partition server02 started the group too: its acquire took the IP from
    # server01, whose group still ran. Once healed, Pacemaker found the group active twice
    # and kept it on one node; every request was serialized and succeeded.
    assert story[0] == ("acquire", "server02", "START", "succeeded")
    assert all(status == "succeeded" for *_, status in story)
    acquires = [caller for action, caller, *_ in story if action == "acquire"]
    assert acquires[-1] == result.final_node
