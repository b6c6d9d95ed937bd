"""A cluster's dry run for operators: what a move of each IP to each member would do.

Built from the same reads a move makes (each member's NICs, by id, learned from its
VM unless the configuration names them) and the same decisions (``plan_acquire``,
then ``plan_nic_edit`` for each NIC the plan would write), so that it cannot disagree
with a move about what a move does. Nothing here talks to Azure.

What it can't see without writing: whether ARM would let the app *write* (a NIC PUT,
joining the subnet, NSG and public IPs on the write), and a holder of the IP outside the
members' NICs (a move learns of one only from ARM's refusal of the add).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import Cluster, IpSpec, Member
from .errors import ErrorInfo, MoverError
from .planning import NicView, find_ip_holders, plan_acquire, plan_nic_edit

__all__ = [
    "NOT_CHECKED",
    "AccessCheck",
    "MemberReading",
    "access_checks",
    "dry_run_report",
]

# Actions of the app's role (infra/role-actions.json) that only a write would exercise.
NOT_CHECKED = (
    (
        "Microsoft.Network/networkInterfaces/write",
        "not checked: only a write shows it (even a PUT of a NIC as it is runs an update "
        "and changes its etag), and a dry run writes nothing",
    ),
    (
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "not checked: ARM checks it (and NSG and public IP joins) on the NIC PUT that "
        "references the subnet, never on a read",
    ),
    (
        "Microsoft.Network/locations/operations/read",
        "not checked: needs an operation of an update to read (a move falls back to the "
        "NIC's provisioningState without it)",
    ),
)

# ARM's answers that mean the app's role does not allow a read.
_DENIED = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed"})


@dataclass(frozen=True)
class MemberReading:
    """What reading one member gave: its NICs (whole, every ip-configuration), or why not."""

    member: Member
    nics: tuple[NicView, ...] = ()
    error: ErrorInfo | None = None
    read_vm: bool = False  # the NICs were learned from the VM (not named by nicId)


@dataclass(frozen=True)
class AccessCheck:
    """One action of the app's role: checked by a read (``ok``), or why it could not be."""

    permission: str
    checked: bool
    ok: bool
    how: str

    def to_api(self) -> dict[str, Any]:
        """The report's form."""
        return {
            "permission": self.permission,
            "checked": self.checked,
            "ok": self.ok,
            "how": self.how,
        }


def access_checks(readings: Sequence[MemberReading]) -> list[AccessCheck]:
    """Which of the role's actions the reads proved, refused, or cannot show."""
    denied = [r for r in readings if r.error is not None and r.error.code in _DENIED]
    nic_count = sum(len(r.nics) for r in readings)
    how = f"read {nic_count} NIC(s) of {len(readings)} member(s)"
    if denied:
        how += "; refused for " + ", ".join(r.member.name for r in denied)
    checks = [
        AccessCheck(
            "Microsoft.Network/networkInterfaces/read",
            checked=True,
            ok=not denied and nic_count > 0,
            how=how,
        )
    ]
    vm_readers = [r for r in readings if r.read_vm]
    if vm_readers:
        vm_denied = [r for r in denied if r.read_vm]
        how = f"read the VM of {len(vm_readers)} member(s) without a nicId"
        if vm_denied:
            how += "; refused for " + ", ".join(r.member.name for r in vm_denied)
        checks.append(
            AccessCheck("Microsoft.Compute/virtualMachines/read", True, not vm_denied, how)
        )
    else:
        checks.append(
            AccessCheck(
                "Microsoft.Compute/virtualMachines/read",
                checked=False,
                ok=True,
                how="not needed: every member names its nicId",
            )
        )
    checks += [AccessCheck(p, checked=False, ok=False, how=why) for p, why in NOT_CHECKED]
    return checks


def dry_run_report(
    cluster: Cluster, readings: Sequence[MemberReading], read_at: str
) -> dict[str, Any]:
    """The report: members (found or why not), access, and for each IP and member the planned
    changes of an acquire by that member (or why it would fail)."""
    problems: list[str] = []
    nics = [nic for r in readings for nic in r.nics]
    members_vm_ids = tuple(m.vm_id for m in cluster.members)
    members = []
    for reading in readings:
        if reading.error is not None:
            problems.append(
                f"member {reading.member.name}: {reading.error.code}: {reading.error.message}"
            )
        members.append(
            {
                "name": reading.member.name,
                "vm": reading.member.vm_id,
                "nicIdConfigured": reading.member.nic_id,
                "nics": [
                    {
                        "id": n.id,
                        "name": n.name,
                        "vm": n.vm_id,
                        "provisioningState": n.provisioning_state,
                    }
                    for n in reading.nics
                ],
                "error": _error(reading.error),
            }
        )
    access = access_checks(readings)
    problems += [f"access: {a.permission}: {a.how}" for a in access if a.checked and not a.ok]
    ips = [
        _ip_report(spec, cluster, readings, nics, members_vm_ids, problems) for spec in cluster.ips
    ]
    return {
        "cluster": cluster.name,
        "subscriptionId": cluster.subscription_id,
        "resourceGroup": cluster.resource_group,
        "readAt": read_at,
        "members": members,
        "access": [a.to_api() for a in access],
        "ips": ips,
        "problems": problems,
        "ok": not problems,
    }


def _ip_report(
    spec: IpSpec,
    cluster: Cluster,
    readings: Sequence[MemberReading],
    nics: list[NicView],
    member_vm_ids: tuple[str, ...],
    problems: list[str],
) -> dict[str, Any]:
    holders = [
        {"nic": n.id, "member": _member_name(cluster, n.vm_id)}
        for n in find_ip_holders(nics, spec.address)
    ]
    clashes = [
        {"nic": n.id, "address": c.address}
        for n in nics
        for c in n.ip_configs
        if c.name.lower() == spec.ip_config_name.lower() and c.address != spec.address
    ]
    for clash in clashes:
        problems.append(
            f"{spec.address}: {clash['nic'].rsplit('/', 1)[-1]} already has an ip-configuration "
            f"named {spec.ip_config_name} (with {clash['address']})"
        )
    moves = []
    for reading in readings:
        move = _move_to(spec, reading, readings, nics, member_vm_ids)
        if move["error"] is not None:
            problems.append(f"{spec.address} -> {reading.member.name}: {move['error']['code']}")
        moves.append(move)
    return {
        "address": spec.address,
        "ipConfigName": spec.ip_config_name,
        "holders": holders,
        "nameClashes": clashes,
        "moves": moves,
    }


def _move_to(
    spec: IpSpec,
    reading: MemberReading,
    readings: Sequence[MemberReading],
    nics: list[NicView],
    member_vm_ids: tuple[str, ...],
) -> dict[str, Any]:
    """What an acquire by ``reading.member`` would write, decided as a move decides it.

    A move reads every member's NICs first, so one member that cannot be read fails
    every acquire at ``find_holder``: that is the move's error then, and ``changes``
    says what it would write once that is fixed.
    """
    move: dict[str, Any] = {"to": reading.member.name, "changes": [], "errors": []}
    by_id = {n.id.lower(): n for n in nics}
    try:
        plan = plan_acquire(nics, reading.member.vm_id, spec.address, member_vm_ids)
        for change in plan.changes:
            edit = plan_nic_edit(
                by_id[change.nic_id.lower()], change, spec.address, spec.ip_config_name
            )
            item: dict[str, Any] = {"kind": change.kind, "nic": change.nic_id}
            if edit.remove_names:
                item["ipConfigs"] = list(edit.remove_names)
            if edit.add_name:
                item.update(ipConfig=edit.add_name, subnet=edit.add_subnet_id)
            move["changes"].append(item)
        move["waitsFor"] = list(plan.waiting)
    except MoverError as exc:
        move["changes"] = []
        move["errors"].append({"code": exc.code, "message": exc.message})
    unreadable = [r for r in readings if r.error is not None]
    if unreadable:
        move["errors"].insert(
            0,
            {
                "code": "member_unreadable",
                "message": "a move reads every member's NICs first, and "
                + ", ".join(f"{r.member.name}'s ({r.error.code})" for r in unreadable if r.error)
                + " could not be read: it would fail at find_holder",
            },
        )
    # The first reason is the one a move would end with.
    move["error"] = move["errors"][0] if move["errors"] else None
    return move


def _member_name(cluster: Cluster, vm_id: str | None) -> str | None:
    member = cluster.member_by_vm(vm_id) if vm_id else None
    return member.name if member else None


def _error(error: ErrorInfo | None) -> dict[str, Any] | None:
    return {"code": error.code, "message": error.message} if error else None
