"""Planning: who holds the IP, and which NIC writes make only the caller's NIC hold it."""

from __future__ import annotations

import dataclasses

import pytest

from mover.errors import PermanentError
from mover.planning import (
    Change,
    IpConfigView,
    NicEdit,
    NicView,
    Plan,
    find_ip_holders,
    find_vm_nic,
    foreign_holder,
    holder_nic_to_read,
    plan_acquire,
    plan_nic_edit,
    plan_release,
    verify_acquired,
    verify_released,
)

from .builders import IP1, IP1_CONFIG, SUB1, SUBNET1, ipc, nic, nic_id, vm_of

VM1, VM2, VM3 = vm_of("server01"), vm_of("server02"), vm_of("server11")


def vip(name: str = IP1_CONFIG, address: str = IP1) -> IpConfigView:
    """The floating IP's ip-configuration."""
    return ipc(name, address)


def permanent(call, *args) -> PermanentError:
    with pytest.raises(PermanentError) as caught:
        call(*args)
    return caught.value


def apply_edit(target: NicView, edit: NicEdit) -> NicView:
    """What ARM does with the NIC once the edit is PUT back."""
    configs = [c for c in target.ip_configs if c.name not in edit.remove_names]
    if edit.add_name is not None:
        configs.append(ipc(edit.add_name, edit.add_address, subnet=edit.add_subnet_id))
    return dataclasses.replace(target, ip_configs=tuple(configs))


def execute(plan: Plan, nics: list[NicView]) -> list[NicView]:
    """Apply a plan's changes in order, each re-decided on the NIC as it is now."""
    by_id = {n.id: n for n in nics}
    for change in plan.changes:
        current = by_id[change.nic_id]
        by_id[change.nic_id] = apply_edit(current, plan_nic_edit(current, change, IP1, IP1_CONFIG))
    return list(by_id.values())


# -- find_ip_holders ----------------------------------------------------------


def test_no_nic_holds_an_unassigned_ip():
    assert find_ip_holders([nic("nic1", VM1), nic("nic2", VM2)], IP1) == []


def test_every_nic_with_the_address_is_a_holder():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2), nic("nic3", VM3, vip("other-name"))]

    assert [n.name for n in find_ip_holders(nics, IP1)] == ["nic1", "nic3"]


def test_config_holding_finds_the_ip_config_by_address():
    target = nic("nic1", VM1, ipc("ipconfig3", "10.5.0.200"), vip())

    assert target.config_holding(IP1).name == IP1_CONFIG
    assert target.config_holding("10.5.0.201") is None


# -- find_vm_nic --------------------------------------------------------------


def test_the_vms_only_nic_is_chosen():
    nics = [nic("nic1", VM1), nic("nic2", VM2)]

    assert find_vm_nic(nics, VM2, IP1).name == "nic2"


def test_vm_id_is_compared_case_insensitively():
    nics = [nic("nic1", VM1.upper()), nic("nic2", VM2)]

    assert find_vm_nic(nics, VM1.lower(), IP1).name == "nic1"


def test_detached_nics_are_ignored():
    nics = [nic("orphan", None, vip()), nic("nic1", VM1)]

    assert find_vm_nic(nics, VM1, IP1).name == "nic1"


def test_vm_without_a_nic_among_those_read_is_a_permanent_error():
    error = permanent(find_vm_nic, [nic("nic2", VM2)], VM1, IP1)

    assert error.code == "vm_has_no_nic"
    assert error.message == f"no NIC read is attached to {VM1}"


def test_vm_with_two_nics_uses_the_one_holding_the_ip():
    nics = [nic("nic1a", VM1), nic("nic1b", VM1, vip()), nic("nic2", VM2)]

    assert find_vm_nic(nics, VM1, IP1).name == "nic1b"


def test_vm_with_two_nics_neither_holding_the_ip_is_ambiguous():
    nics = [nic("nic1a", VM1), nic("nic1b", VM1), nic("nic2", VM2, vip())]

    error = permanent(find_vm_nic, nics, VM1, IP1)

    assert error.code == "vm_has_several_nics"
    assert error.message == (
        f"{VM1} has 2 NICs (nic1a, nic1b); cannot tell which one "
        "(name it in the configuration: nicId)"
    )


# -- plan_acquire -------------------------------------------------------------


def test_acquire_when_already_on_the_target_alone_needs_no_write():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2)]

    plan = plan_acquire(nics, VM1, IP1)

    assert plan.done
    assert plan.changes == ()
    assert plan.target_nic.name == "nic1"
    assert plan.holders == (nic_id("nic1"),)


def test_acquire_of_an_unassigned_ip_only_adds_it():
    nics = [nic("nic1", VM1), nic("nic2", VM2)]

    plan = plan_acquire(nics, VM1, IP1)

    assert plan.changes == (Change("add", nic_id("nic1"), "nic1"),)
    assert plan.holders == ()
    assert not plan.done


def test_acquire_removes_from_the_other_nic_first_then_adds():
    nics = [nic("nic1", VM1), nic("nic2", VM2, vip())]

    plan = plan_acquire(nics, VM1, IP1)

    assert plan.changes == (
        Change("remove", nic_id("nic2"), "nic2"),
        Change("add", nic_id("nic1"), "nic1"),
    )
    assert plan.holders == (nic_id("nic2"),)


def test_acquire_removes_from_every_other_holder_before_adding():
    nics = [nic("nic2", VM2, vip()), nic("nic1", VM1), nic("nic3", VM3, vip("stray"))]

    plan = plan_acquire(nics, VM1, IP1)

    assert [(c.kind, c.nic_name) for c in plan.changes] == [
        ("remove", "nic2"),
        ("remove", "nic3"),
        ("add", "nic1"),
    ]
    assert plan.holders == (nic_id("nic2"), nic_id("nic3"))


def test_acquire_when_on_target_and_elsewhere_only_removes_the_other():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2, vip())]

    plan = plan_acquire(nics, VM1, IP1)

    assert plan.changes == (Change("remove", nic_id("nic2"), "nic2"),)
    assert set(plan.holders) == {nic_id("nic1"), nic_id("nic2")}


MEMBERS = (VM1, VM2)


def test_acquire_takes_the_ip_from_another_member():
    nics = [nic("nic1", VM1), nic("nic2", VM2.upper(), vip())]

    plan = plan_acquire(nics, VM1, IP1, MEMBERS)

    assert [c.kind for c in plan.changes] == ["remove", "add"]


@pytest.mark.parametrize("holder_vm", [VM3, None], ids=["another VM", "no VM"])
def test_acquire_never_takes_the_ip_from_a_nic_that_is_not_a_members(holder_vm):
    nics = [nic("nic1", VM1), nic("nic3", holder_vm, vip())]

    error = permanent(plan_acquire, nics, VM1, IP1, MEMBERS)

    assert error.code == "held_by_non_member"
    assert nic_id("nic3") in error.message
    assert "nothing was changed" in error.message


def test_an_operator_may_force_taking_the_ip_from_a_non_member():
    nics = [nic("nic1", VM1), nic("nic3", VM3, vip())]

    plan = plan_acquire(nics, VM1, IP1, MEMBERS, force=True)

    assert plan.changes == (
        Change("remove", nic_id("nic3"), "nic3"),
        Change("add", nic_id("nic1"), "nic1"),
    )


def test_acquire_never_removes_a_primary_address_elsewhere():
    nics = [nic("nic1", VM1), nic("nic2", VM2, primary_address=IP1)]

    error = permanent(plan_acquire, nics, VM1, IP1)

    assert error.code == "ip_is_primary_elsewhere"
    assert error.message == f"{IP1} is the primary address of nic2; it cannot be moved"


def test_acquire_for_a_vm_with_two_nics_keeps_the_ip_where_it_is():
    nics = [nic("nic1a", VM1), nic("nic1b", VM1, vip()), nic("nic2", VM2)]

    plan = plan_acquire(nics, VM1, IP1)

    assert plan.done
    assert plan.target_nic.name == "nic1b"


def test_acquire_for_a_vm_without_nic_fails_before_any_change():
    error = permanent(plan_acquire, [nic("nic2", VM2, vip())], VM1, IP1)

    assert error.code == "vm_has_no_nic"


def test_executing_the_acquire_plan_leaves_the_ip_on_the_target_only():
    nics = [nic("nic1", VM1), nic("nic2", VM2, vip()), nic("nic3", VM3, vip("stray"))]

    after = execute(plan_acquire(nics, VM1, IP1), nics)

    assert verify_acquired(after, VM1, IP1) is None
    assert plan_acquire(after, VM1, IP1).done
    assert [n.name for n in find_ip_holders(after, IP1)] == ["nic1"]


def test_executing_the_acquire_plan_twice_changes_nothing_the_second_time():
    nics = [nic("nic1", VM1), nic("nic2", VM2, vip())]
    plan = plan_acquire(nics, VM1, IP1)

    once = execute(plan, nics)
    twice = execute(plan, once)

    assert twice == once


# -- plan_release -------------------------------------------------------------


def test_release_removes_the_ip_from_the_callers_nic():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2)]

    plan = plan_release(nics, VM1, IP1)

    assert plan.changes == (Change("remove", nic_id("nic1"), "nic1"),)
    assert plan.target_nic.name == "nic1"


def test_release_when_not_on_the_caller_needs_no_write_even_if_elsewhere():
    nics = [nic("nic1", VM1), nic("nic2", VM2, vip())]

    plan = plan_release(nics, VM1, IP1)

    assert plan.done
    assert plan.holders == (nic_id("nic2"),)


def test_release_never_touches_another_nic():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2, vip()), nic("nic3", VM3, vip())]

    plan = plan_release(nics, VM1, IP1)

    assert [c.nic_name for c in plan.changes] == ["nic1"]


def test_release_of_an_unassigned_ip_needs_no_write():
    assert plan_release([nic("nic1", VM1), nic("nic2", VM2)], VM1, IP1).done


def test_release_never_removes_the_primary_address():
    error = permanent(plan_release, [nic("nic1", VM1, primary_address=IP1)], VM1, IP1)

    assert error.code == "ip_is_primary"
    assert error.message == f"{IP1} is the primary address of nic1; not releasing it"


def test_executing_the_release_plan_leaves_other_holders_alone():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2, vip())]

    after = execute(plan_release(nics, VM1, IP1), nics)

    assert verify_released(after, VM1, IP1) is None
    assert [n.name for n in find_ip_holders(after, IP1)] == ["nic2"]
    assert plan_release(after, VM1, IP1).done


# -- plan_nic_edit ------------------------------------------------------------


def test_remove_drops_the_ip_config_carrying_the_address():
    holder = nic("nic2", VM2, ipc("ipconfig3", "10.5.0.200"), vip())

    edit = plan_nic_edit(holder, Change("remove", holder.id, "nic2"), IP1, IP1_CONFIG)

    assert edit == NicEdit(remove_names=(IP1_CONFIG,))
    assert not edit.is_noop


def test_remove_matches_by_address_not_by_name():
    holder = nic("nic2", VM2, vip(name="legacy-vip"))

    edit = plan_nic_edit(holder, Change("remove", holder.id, "nic2"), IP1, IP1_CONFIG)

    assert edit.remove_names == ("legacy-vip",)


def test_remove_of_an_address_already_gone_is_a_noop():
    holder = nic("nic2", VM2, ipc(IP1_CONFIG, "10.5.0.201"))

    edit = plan_nic_edit(holder, Change("remove", holder.id, "nic2"), IP1, IP1_CONFIG)

    assert edit.is_noop
    assert edit == NicEdit()


def test_remove_never_names_a_primary_ip_config():
    holder = nic("nic2", VM2, primary_address=IP1)

    edit = plan_nic_edit(holder, Change("remove", holder.id, "nic2"), IP1, IP1_CONFIG)

    assert edit.remove_names == ()


def test_add_joins_the_primary_subnet_with_the_configured_name():
    subnet = SUBNET1.replace("default", "backend")
    target = NicView(
        id=nic_id("nic1"),
        name="nic1",
        vm_id=VM1,
        provisioning_state="Succeeded",
        ip_configs=(
            ipc("ipconfig3", "10.5.0.200", subnet=None),
            ipc("ipconfig1", "10.5.0.4", True, subnet),
        ),
    )

    edit = plan_nic_edit(target, Change("add", target.id, "nic1"), IP1, IP1_CONFIG)

    assert edit == NicEdit(add_name=IP1_CONFIG, add_address=IP1, add_subnet_id=subnet)
    assert not edit.is_noop


@pytest.mark.parametrize("name", [IP1_CONFIG, "some-other-name"])
def test_add_when_the_address_is_already_there_is_a_noop(name):
    target = nic("nic1", VM1, vip(name=name))

    assert plan_nic_edit(target, Change("add", target.id, "nic1"), IP1, IP1_CONFIG).is_noop


def test_add_to_a_nic_without_primary_is_a_permanent_error():
    target = NicView(nic_id("nic1"), "nic1", VM1, "Succeeded", (ipc("ipconfig1", "10.5.0.4"),))

    error = permanent(plan_nic_edit, target, Change("add", target.id, "nic1"), IP1, IP1_CONFIG)

    assert error.code == "nic_has_no_primary"
    assert error.message == "nic1 has no primary ip-configuration"


def test_add_to_a_nic_whose_primary_has_no_subnet_is_a_permanent_error():
    target = NicView(
        nic_id("nic1"), "nic1", VM1, "Succeeded", (ipc("ipconfig1", "10.5.0.4", True, None),)
    )

    error = permanent(plan_nic_edit, target, Change("add", target.id, "nic1"), IP1, IP1_CONFIG)

    assert error.code == "nic_has_no_primary"


def test_add_when_the_name_is_taken_by_another_address_is_a_permanent_error():
    target = nic("nic1", VM1, ipc(IP1_CONFIG, "10.5.0.201"))

    error = permanent(plan_nic_edit, target, Change("add", target.id, "nic1"), IP1, IP1_CONFIG)

    assert error.code == "ip_config_name_taken"
    assert error.message == (
        f"nic1 already has an ip-configuration named {IP1_CONFIG} with another address"
    )


def test_nic_edit_defaults_to_a_noop():
    assert NicEdit().is_noop
    assert not NicEdit(remove_names=("x",)).is_noop
    assert not NicEdit(add_name="x").is_noop


# -- verify -------------------------------------------------------------------


def test_verify_acquired_passes_when_only_the_target_holds_the_ip():
    assert verify_acquired([nic("nic1", VM1, vip()), nic("nic2", VM2)], VM1, IP1) is None


def test_verify_acquired_names_every_holder_when_another_nic_still_has_it():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2, vip())]

    assert verify_acquired(nics, VM1, IP1) == f"{IP1} is on nic1, nic2, expected only on nic1"


def test_verify_acquired_fails_when_the_ip_is_nowhere():
    nics = [nic("nic1", VM1), nic("nic2", VM2)]

    assert verify_acquired(nics, VM1, IP1) == f"{IP1} is on no NIC, expected only on nic1"


def test_verify_acquired_fails_when_the_ip_is_only_elsewhere():
    nics = [nic("nic1", VM1), nic("nic2", VM2, vip())]

    assert verify_acquired(nics, VM1, IP1) == f"{IP1} is on nic2, expected only on nic1"


def test_verify_released_ignores_other_holders():
    assert verify_released([nic("nic1", VM1), nic("nic2", VM2, vip())], VM1, IP1) is None


def test_verify_released_fails_while_the_target_still_holds_it():
    nics = [nic("nic1", VM1, vip()), nic("nic2", VM2)]

    assert verify_released(nics, VM1, IP1) == f"{IP1} is still on nic1"


# -- NicView as data ----------------------------------------------------------


def test_nic_view_round_trips_through_its_dict():
    original = nic("nic1", VM1, vip(), ipc("ipconfig3", None, subnet=None))

    data = original.to_dict()

    assert data["vmId"] == VM1
    assert data["ipConfigs"][0] == {
        "name": "ipconfig1",
        "address": original.ip_configs[0].address,
        "primary": True,
        "subnetId": SUBNET1,
    }
    assert NicView.from_dict(data) == original


def test_nic_view_from_minimal_dict_defaults_the_optional_fields():
    view = NicView.from_dict({"id": "n", "name": "n", "ipConfigs": [{"name": "c"}]})

    assert view.vm_id is None
    assert view.provisioning_state is None
    assert view.ip_configs[0] == ipc("c", None, False, None)


# -- provisioning states: only Succeeded is done -----------------------------------


def in_state(view: NicView, state: str) -> NicView:
    return dataclasses.replace(view, provisioning_state=state)


def test_the_ip_on_a_failed_target_nic_is_not_done_it_is_repaired():
    nics = [in_state(nic("nic1", VM1, vip()), "Failed"), nic("nic2", VM2)]

    plan = plan_acquire(nics, VM1, IP1, MEMBERS)

    assert plan.changes == (Change("repair", nic_id("nic1"), "nic1"),)
    assert not plan.done


@pytest.mark.parametrize("state", ["Updating", "Deleting", None])
def test_a_target_nic_still_updating_is_waited_for(state):
    nics = [in_state(nic("nic1", VM1, vip()), state), nic("nic2", VM2)]

    plan = plan_acquire(nics, VM1, IP1, MEMBERS)

    assert (plan.changes, plan.waiting) == ((), (nic_id("nic1"),))
    assert not plan.done


def test_a_nic_this_request_wrote_must_end_succeeded_too():
    # The remove from nic2 happened but left the NIC Failed: repair the loser as well.
    nics = [nic("nic1", VM1, vip()), in_state(nic("nic2", VM2), "Failed")]

    plan = plan_acquire(nics, VM1, IP1, MEMBERS, touched=(nic_id("nic2").upper(),))

    assert plan.changes == (Change("repair", nic_id("nic2"), "nic2"),)


def test_a_failed_nic_the_request_did_not_write_is_not_its_business():
    nics = [nic("nic1", VM1, vip()), in_state(nic("nic2", VM2), "Failed")]

    assert plan_acquire(nics, VM1, IP1, MEMBERS).done


def test_a_planned_write_is_the_repair_of_a_failed_nic():
    nics = [nic("nic1", VM1), in_state(nic("nic2", VM2, vip()), "Failed")]

    plan = plan_acquire(nics, VM1, IP1, MEMBERS, touched=(nic_id("nic2"),))

    assert [c.kind for c in plan.changes] == ["remove", "add"]


def test_a_release_waits_for_the_nic_it_wrote():
    nics = [in_state(nic("nic1", VM1), "Updating")]

    plan = plan_release(nics, VM1, IP1, touched=(nic_id("nic1"),))

    assert plan.waiting == (nic_id("nic1"),)
    assert plan_release([nic("nic1", VM1)], VM1, IP1, touched=(nic_id("nic1"),)).done


def test_a_repair_rewrites_a_failed_nic_and_leaves_a_healthy_one_alone():
    change = Change("repair", nic_id("nic1"), "nic1")
    failed = in_state(nic("nic1", VM1, vip()), "Failed")

    assert plan_nic_edit(failed, change, IP1, IP1_CONFIG) == NicEdit(rewrite=True)
    assert plan_nic_edit(nic("nic1", VM1, vip()), change, IP1, IP1_CONFIG).is_noop


def _allocated_to(holder: str) -> str:
    """ARM's PrivateIPAddressIsAllocated message, as recorded."""
    return (
        f"IP configuration {nic_id('server01-nic')}/ipConfigurations/{IP1_CONFIG} is using the "
        f"private IP address {IP1} which is already allocated to resource {holder}."
    )


def test_a_holder_the_plan_takes_the_ip_from_is_not_foreign() -> None:
    nics = [nic("server01-nic", VM1), nic("server02-nic", VM2, vip())]
    plan = plan_acquire(nics, VM1, IP1)
    holder = f"{nic_id('server02-nic').upper()}/ipConfigurations/{IP1_CONFIG}"

    assert foreign_holder(_allocated_to(holder), plan) is None


def test_a_holder_outside_the_plan_is_foreign() -> None:
    plan = plan_acquire([nic("server01-nic", VM1), nic("server02-nic", VM2)], VM1, IP1)
    frontend = (
        "/subscriptions/s/resourceGroups/other/providers/Microsoft.Network/loadBalancers/lb"
        "/frontendIPConfigurations/fe"
    )

    assert foreign_holder(_allocated_to(frontend), plan) == frontend
    assert foreign_holder("Some other wording without a resource id.", plan) is None


# -- holder_nic_to_read: a holder ARM names outside what the move read ---------------


def test_a_nic_of_the_cluster_group_that_arm_names_is_read() -> None:
    holder = f"{nic_id('db01-nic')}/ipConfigurations/{IP1_CONFIG}"

    read = [nic_id("server01-nic"), nic_id("server02-nic")]

    assert holder_nic_to_read(holder, SUB1, "TestGroup1", read) == nic_id("db01-nic")


def test_group_and_subscription_of_the_named_nic_compare_case_insensitively() -> None:
    holder = f"{nic_id('db01-nic').upper()}/IPCONFIGURATIONS/{IP1_CONFIG}"

    assert holder_nic_to_read(holder, SUB1.upper(), "testgroup1", []) == nic_id("db01-nic").upper()


@pytest.mark.parametrize(
    "holder",
    [
        # another kind of resource
        f"/subscriptions/{SUB1}/resourceGroups/TestGroup1/providers/Microsoft.Network"
        "/loadBalancers/lb/frontendIPConfigurations/fe",
        # another resource group, where the app's role does not reach
        f"{nic_id('db01-nic', group='OtherGroup')}/ipConfigurations/x",
        # another subscription
        f"{nic_id('db01-nic', subscription='0a1b2c3d-4e5f-4a6b-8c7d-000000000009')}"
        "/ipConfigurations/x",
        # a NIC the move has read already (ARM and the read disagree: ARM's answer stands)
        f"{nic_id('server02-nic')}/ipConfigurations/{IP1_CONFIG}",
    ],
    ids=["load-balancer", "other-group", "other-subscription", "already-read"],
)
def test_what_the_move_cannot_or_need_not_read_is_not_read(holder: str) -> None:
    read = [nic_id("server01-nic"), nic_id("server02-nic").lower()]

    assert holder_nic_to_read(holder, SUB1, "TestGroup1", read) is None


def test_an_operator_forces_the_ip_off_a_non_member_nic_once_it_is_read() -> None:
    # What the move does after ARM named db01-nic: read it, plan again.
    nics = [nic("server01-nic", VM1), nic("server02-nic", VM2), nic("db01-nic", VM3, vip())]

    assert permanent(plan_acquire, nics, VM1, IP1, (VM1, VM2)).code == "held_by_non_member"
    plan = plan_acquire(nics, VM1, IP1, (VM1, VM2), True)
    assert [(c.kind, c.nic_name) for c in plan.changes] == [
        ("remove", "db01-nic"),
        ("add", "server01-nic"),
    ]


# -- NicView.about: what a move keeps of a NIC ----------------------------------------


def test_a_nic_about_an_address_keeps_only_the_configs_carrying_it() -> None:
    full = nic("nic1", VM1, ipc("other", "10.5.0.99"), vip())

    kept = full.about(IP1)

    assert kept.ip_configs == (vip(),)
    assert (kept.id, kept.name, kept.vm_id, kept.provisioning_state) == (
        full.id,
        full.name,
        full.vm_id,
        full.provisioning_state,
    )
    plans = [plan_acquire([n], VM1, IP1) for n in (kept, full)]
    assert [(p.holders, p.changes, p.waiting) for p in plans] == [((full.id,), (), ())] * 2
    assert nic("nic2", VM2).about(IP1).ip_configs == ()
