"""dry_run_report and access_checks: the decisions of the operators' dry run."""

from __future__ import annotations

from dataclasses import replace

from mover.dry_run import MemberReading, access_checks, dry_run_report
from mover.errors import ErrorInfo

from .builders import IP1, IP1_CONFIG, ipc, nic, sample_config, vm_of

READ_AT = "2026-11-26T12:00:00.000Z"


def cluster1():
    return sample_config().clusters[0]


def readings(**nics):
    """A reading per member of cluster1: its NICs, or an ErrorInfo."""
    found = []
    for member in cluster1().members:
        value = nics[member.name]
        if isinstance(value, ErrorInfo):
            found.append(MemberReading(member, error=value, read_vm=True))
        else:
            found.append(MemberReading(member, tuple(value), read_vm=True))
    return found


def moves(report):
    (ip,) = report["ips"]
    return {m["to"]: m for m in ip["moves"]}


def test_each_move_is_planned_as_a_move_plans_it() -> None:
    held = nic("server01-nic", vm_of("server01"), ipc(IP1_CONFIG, IP1))
    free = nic("server02-nic", vm_of("server02"))

    report = dry_run_report(cluster1(), readings(server01=[held], server02=[free]), READ_AT)

    assert report["ok"] is True and report["problems"] == []
    planned = moves(report)
    assert planned["server01"]["changes"] == [] and planned["server01"]["error"] is None
    assert [(c["kind"], c["nic"]) for c in planned["server02"]["changes"]] == [
        ("remove", held.id),
        ("add", free.id),
    ]
    assert planned["server02"]["changes"][0]["ipConfigs"] == [IP1_CONFIG]
    assert planned["server02"]["changes"][1]["subnet"] == free.ip_configs[0].subnet_id


def test_a_member_that_cannot_be_read_fails_every_move() -> None:
    missing = ErrorInfo("ResourceNotFound", "no such VM", transient=False, status=404)
    report = dry_run_report(
        cluster1(),
        readings(server01=[nic("server01-nic", vm_of("server01"))], server02=missing),
        READ_AT,
    )
    planned = moves(report)
    assert planned["server01"]["error"]["code"] == "member_unreadable"
    assert [c["kind"] for c in planned["server01"]["changes"]] == ["add"]  # once fixed
    assert [e["code"] for e in planned["server02"]["errors"]] == [
        "member_unreadable",
        "vm_has_no_nic",
    ]
    assert report["ok"] is False
    assert report["problems"][0] == "member server02: ResourceNotFound: no such VM"


def test_an_ip_config_name_taken_with_another_address_is_a_clash() -> None:
    clashing = nic("server02-nic", vm_of("server02"), ipc(IP1_CONFIG, "10.5.0.120"))
    report = dry_run_report(
        cluster1(),
        readings(server01=[nic("server01-nic", vm_of("server01"))], server02=[clashing]),
        READ_AT,
    )
    (ip,) = report["ips"]
    assert ip["nameClashes"] == [{"nic": clashing.id, "address": "10.5.0.120"}]
    assert moves(report)["server02"]["error"]["code"] == "ip_config_name_taken"
    assert moves(report)["server01"]["error"] is None


def test_access_says_what_the_reads_proved_and_what_only_a_write_would() -> None:
    denied = ErrorInfo("AuthorizationFailed", "no", transient=False, status=403)
    found = readings(server01=[nic("server01-nic", vm_of("server01"))], server02=denied)

    checks = {c.permission: c for c in access_checks(found)}

    assert checks["Microsoft.Network/networkInterfaces/read"].ok is False
    assert "refused for server02" in checks["Microsoft.Network/networkInterfaces/read"].how
    assert checks["Microsoft.Compute/virtualMachines/read"].ok is False
    unchecked = [p for p, c in checks.items() if not c.checked]
    assert "Microsoft.Network/networkInterfaces/write" in unchecked
    assert "Microsoft.Network/virtualNetworks/subnets/join/action" in unchecked


def test_vm_reads_are_not_needed_when_every_member_names_its_nic() -> None:
    named = [
        replace(r, read_vm=False)
        for r in readings(
            server01=[nic("server01-nic", vm_of("server01"))],
            server02=[nic("server02-nic", vm_of("server02"))],
        )
    ]
    check = {c.permission: c for c in access_checks(named)}[
        "Microsoft.Compute/virtualMachines/read"
    ]
    assert check.checked is False and "not needed" in check.how
