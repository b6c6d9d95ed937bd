"""Which NICs a move reads: the members' NICs by id, in parallel, learned from the VMs once."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from mover.errors import PermanentError, TransientError
from mover.member_nics import MemberNics, MemberRef, learned_member_nics, nic_ids_of_vm
from mover.planning import NicView

from .builders import nic, nic_id, vm_of

VM1, VM2, VM3 = vm_of("server01"), vm_of("server02"), vm_of("server11")


def vm_resource(vm_id: str, *nic_names: str) -> dict[str, Any]:
    """A VM as ARM's GET returns it (the parts that matter here)."""
    return {
        "id": vm_id,
        "properties": {
            "networkProfile": {
                "networkInterfaces": [
                    {"id": nic_id(name), "properties": {"primary": i == 0}}
                    for i, name in enumerate(nic_names)
                ]
            }
        },
    }


class FakeArm:
    """VMs and NICs by id; counts reads, and how many ran at once."""

    def __init__(self) -> None:
        self.vms = {
            VM1.lower(): vm_resource(VM1, "server01-nic"),
            VM2.lower(): vm_resource(VM2, "server02-nic"),
        }
        self.nics = {
            n.id.lower(): n
            for n in (nic("server01-nic", VM1), nic("server02-nic", VM2), nic("db01-nic", VM3))
        }
        self.vm_reads: list[str] = []
        self.nic_reads: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail: dict[str, Exception] = {}

    async def _read(self, resource_id: str) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if resource_id.lower() in self.fail:
            raise self.fail[resource_id.lower()]

    async def read_vm(self, vm_id: str) -> dict[str, Any]:
        self.vm_reads.append(vm_id)
        await self._read(vm_id)
        return self.vms[vm_id.lower()]

    async def read_nic(self, nic_id: str) -> NicView | None:
        self.nic_reads.append(nic_id)
        await self._read(nic_id)
        return self.nics.get(nic_id.lower())


def read(
    nics: MemberNics, arm: FakeArm, members: list[MemberRef], others: tuple[str, ...] = ()
) -> list[str]:
    views = asyncio.run(nics.read(members, others, arm.read_vm, arm.read_nic))
    return sorted(v.name for v in views)


MEMBERS = [MemberRef(VM1), MemberRef(VM2)]


def test_the_members_nics_are_learned_from_their_vms_and_read_in_parallel() -> None:
    arm = FakeArm()

    assert read(MemberNics(), arm, MEMBERS) == ["server01-nic", "server02-nic"]
    assert sorted(arm.vm_reads) == sorted([VM1, VM2])
    assert sorted(arm.nic_reads) == sorted([nic_id("server01-nic"), nic_id("server02-nic")])
    assert arm.most_in_flight == 2


def test_learned_nics_are_kept_so_later_moves_read_only_the_nics() -> None:
    arm, nics = FakeArm(), MemberNics()
    read(nics, arm, MEMBERS)
    arm.vm_reads.clear()
    arm.nic_reads.clear()

    assert read(nics, arm, MEMBERS) == ["server01-nic", "server02-nic"]
    assert arm.vm_reads == []
    assert len(arm.nic_reads) == 2


def test_a_nic_named_in_the_configuration_needs_no_vm_read() -> None:
    arm = FakeArm()

    names = read(MemberNics(), arm, [MemberRef(VM1, nic_id("server01-nic")), MemberRef(VM2)])

    assert names == ["server01-nic", "server02-nic"]
    assert arm.vm_reads == [VM2]


def test_a_vm_with_several_nics_has_each_read() -> None:
    arm = FakeArm()
    arm.vms[VM1.lower()] = vm_resource(VM1, "server01-nic", "server01-nic2")
    arm.nics[nic_id("server01-nic2").lower()] = nic("server01-nic2", VM1)

    assert read(MemberNics(), arm, [MemberRef(VM1)]) == ["server01-nic", "server01-nic2"]


def test_others_named_by_arm_are_read_too_and_left_out_when_gone() -> None:
    arm = FakeArm()

    names = read(MemberNics(), arm, MEMBERS, (nic_id("db01-nic"), nic_id("gone-nic")))

    assert names == ["db01-nic", "server01-nic", "server02-nic"]


def test_each_nic_is_read_once_whatever_its_ids_case() -> None:
    arm = FakeArm()

    read(MemberNics(), arm, MEMBERS, (nic_id("server02-nic").upper(),))

    assert len(arm.nic_reads) == 2


def test_a_learned_nic_moved_to_another_vm_is_learned_again() -> None:
    arm, nics = FakeArm(), MemberNics()
    read(nics, arm, MEMBERS)
    # server01 got a new NIC; its old one now belongs to another VM.
    arm.vms[VM1.lower()] = vm_resource(VM1, "server01-new")
    arm.nics[nic_id("server01-new").lower()] = nic("server01-new", VM1)
    old = arm.nics[nic_id("server01-nic").lower()]
    arm.nics[old.id.lower()] = dataclasses.replace(old, vm_id=VM3)
    arm.vm_reads.clear()

    names = read(nics, arm, MEMBERS)

    assert "server01-new" in names
    assert arm.vm_reads == [VM1]
    # ... and kept: the next read asks no VM.
    arm.vm_reads.clear()
    read(nics, arm, MEMBERS)
    assert arm.vm_reads == []


def test_a_learned_nic_that_is_gone_is_learned_again() -> None:
    arm, nics = FakeArm(), MemberNics()
    read(nics, arm, MEMBERS)
    del arm.nics[nic_id("server02-nic").lower()]
    arm.vms[VM2.lower()] = vm_resource(VM2, "server02-new")
    arm.nics[nic_id("server02-new").lower()] = nic("server02-new", VM2)

    assert read(nics, arm, MEMBERS) == ["server01-nic", "server02-new"]


def test_a_nic_just_learned_is_taken_as_the_vm_says_even_if_detached() -> None:
    # ARM's two sides disagree (the NIC says no VM): read once, let the plan decide.
    arm = FakeArm()
    arm.nics[nic_id("server02-nic").lower()] = nic("server02-nic", None)

    assert read(MemberNics(), arm, MEMBERS) == ["server01-nic", "server02-nic"]
    assert len(arm.vm_reads) == 2


def test_a_configured_nic_that_does_not_exist_is_a_permanent_error() -> None:
    arm = FakeArm()

    with pytest.raises(PermanentError) as caught:
        read(MemberNics(), arm, [MemberRef(VM1, nic_id("typo-nic")), MemberRef(VM2)])

    assert caught.value.code == "nic_not_found"
    assert nic_id("typo-nic") in caught.value.message


def test_a_failed_read_fails_the_whole_read_after_the_others_ended() -> None:
    arm = FakeArm()
    arm.fail[nic_id("server02-nic").lower()] = TransientError("ServiceUnavailable", "busy")

    with pytest.raises(TransientError):
        read(MemberNics(), arm, MEMBERS)
    assert arm.in_flight == 0


def test_a_vm_that_lists_no_nic_says_to_name_one() -> None:
    with pytest.raises(PermanentError) as caught:
        nic_ids_of_vm({"id": VM1, "properties": {"networkProfile": {}}})

    assert caught.value.code == "vm_has_no_nic"
    assert "nicId" in caught.value.message


def test_a_vms_nic_ids_come_in_its_network_profiles_order() -> None:
    vm = vm_resource(VM1, "a-nic", "b-nic")

    assert nic_ids_of_vm(vm) == (nic_id("a-nic"), nic_id("b-nic"))


def test_member_refs_round_trip_through_the_activity_input() -> None:
    for ref in (MemberRef(VM1), MemberRef(VM2, nic_id("server02-nic"))):
        assert MemberRef.from_dict(ref.to_dict()) == ref
    assert MemberRef(VM1).to_dict() == {"vmId": VM1}


def test_nics_an_earlier_move_learned_spare_the_vm_reads_in_a_new_process() -> None:
    arm = FakeArm()
    known = [
        MemberRef(VM1, known_nic_ids=(nic_id("server01-nic"),)),
        MemberRef(VM2, known_nic_ids=(nic_id("server02-nic"),)),
    ]
    assert read(MemberNics(), arm, known) == ["server01-nic", "server02-nic"]
    assert arm.vm_reads == []


def test_a_known_nic_now_attached_elsewhere_is_learned_again_from_the_vm() -> None:
    arm = FakeArm()
    stale = [MemberRef(VM1, known_nic_ids=(nic_id("db01-nic"),)), MemberRef(VM2)]
    # The stale NIC was read (and is another VM's now: the plan sees it as such).
    assert read(MemberNics(), arm, stale) == ["db01-nic", "server01-nic", "server02-nic"]
    assert sorted(arm.vm_reads) == sorted([VM1, VM2])


def test_what_a_move_learned_is_keyed_by_vm_and_leaves_out_named_members() -> None:
    members = [MemberRef(VM1), MemberRef(VM2, nic_id("server02-nic"))]
    views = [nic("server01-nic", VM1), nic("server02-nic", VM2), nic("db01-nic", VM3)]
    assert learned_member_nics(members, views) == {VM1.lower(): [nic_id("server01-nic")]}
