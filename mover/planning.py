"""Who holds an IP, and what to change so that the right NIC (and only it) holds it.

NICs are seen through ``NicView``: the few facts the decisions need, read from
ARM by an activity. Nothing here talks to Azure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import PermanentError

__all__ = [
    "Change",
    "IpConfigView",
    "NicEdit",
    "NicView",
    "Plan",
    "find_ip_holders",
    "find_vm_nic",
    "foreign_holder",
    "holder_nic_to_read",
    "plan_acquire",
    "plan_nic_edit",
    "plan_release",
    "verify_acquired",
    "verify_released",
]


@dataclass(frozen=True)
class IpConfigView:
    """An ip-configuration of a NIC."""

    name: str
    address: str | None
    primary: bool
    subnet_id: str | None


@dataclass(frozen=True)
class NicView:
    """A NIC as the decisions see it."""

    id: str
    name: str
    vm_id: str | None
    provisioning_state: str | None
    ip_configs: tuple[IpConfigView, ...]
    # The version read (ARM's etag): a change planned on it is written at it (If-Match).
    etag: str | None = None

    def config_holding(self, address: str) -> IpConfigView | None:
        """The ip-configuration with this private address, if any."""
        return next((c for c in self.ip_configs if c.address == address), None)

    def about(self, address: str) -> NicView:
        """The NIC with only the ip-configurations that carry ``address``: all that a
        move's decisions need from a NIC it read, and all that its history keeps."""
        configs = tuple(c for c in self.ip_configs if c.address == address)
        return NicView(self.id, self.name, self.vm_id, self.provisioning_state, configs, self.etag)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (activities return NICs to the orchestration as data)."""
        return {
            "id": self.id,
            "name": self.name,
            "vmId": self.vm_id,
            "provisioningState": self.provisioning_state,
            "ipConfigs": [
                {
                    "name": c.name,
                    "address": c.address,
                    "primary": c.primary,
                    "subnetId": c.subnet_id,
                }
                for c in self.ip_configs
            ],
            **({"etag": self.etag} if self.etag else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NicView:
        """From the JSON form."""
        return cls(
            id=data["id"],
            name=data["name"],
            vm_id=data.get("vmId"),
            provisioning_state=data.get("provisioningState"),
            ip_configs=tuple(
                IpConfigView(c["name"], c.get("address"), bool(c.get("primary")), c.get("subnetId"))
                for c in data["ipConfigs"]
            ),
            etag=data.get("etag"),
        )


@dataclass(frozen=True)
class Change:
    """One NIC write: take the IP off a NIC, put it on one, or repair a failed NIC."""

    kind: str  # "remove" | "add" | "repair" (PUT the NIC as it is: Azure's remedy for Failed)
    nic_id: str
    nic_name: str


# A NIC update is done only when ARM says Succeeded; Failed needs a repair, and
# anything else (Updating...) is still in progress.
SUCCEEDED = "Succeeded"
FAILED = "Failed"


@dataclass(frozen=True)
class Plan:
    """The writes that make the desired state true; empty when it already is.

    ``waiting`` names NICs whose update is still in progress: not done yet,
    read them again later.
    """

    target_nic: NicView
    holders: tuple[str, ...]
    changes: tuple[Change, ...]
    waiting: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        """Nothing to change and nothing in progress: the move is complete."""
        return not self.changes and not self.waiting


@dataclass(frozen=True)
class NicEdit:
    """How to change one NIC's ip-configurations (names to drop, one to add).

    ``rewrite``: PUT the NIC even without a change to its ip-configurations
    (a NIC left Failed is repaired by writing it again).
    """

    remove_names: tuple[str, ...] = ()
    add_name: str | None = None
    add_address: str | None = None
    add_subnet_id: str | None = None
    rewrite: bool = False

    @property
    def is_noop(self) -> bool:
        """Whether the NIC is already as wanted (and needs no repair)."""
        return not self.remove_names and self.add_name is None and not self.rewrite


def _same_id(a: str | None, b: str | None) -> bool:
    # ARM resource ids are case-insensitive (ARM itself returns mixed cases).
    return a is not None and b is not None and a.lower() == b.lower()


def find_ip_holders(nics: list[NicView], address: str) -> list[NicView]:
    """The NICs that have an ip-configuration with this address."""
    return [n for n in nics if n.config_holding(address) is not None]


def find_vm_nic(nics: list[NicView], vm_id: str, address: str) -> NicView:
    """The NIC of this VM that should carry the IP.

    Raises PermanentError when none of the NICs read is attached to the VM, or
    several are and none of them already holds the IP (ambiguous).
    """
    own = [n for n in nics if _same_id(n.vm_id, vm_id)]
    if not own:
        raise PermanentError("vm_has_no_nic", f"no NIC read is attached to {vm_id}")
    if len(own) == 1:
        return own[0]
    holding = [n for n in own if n.config_holding(address) is not None]
    if len(holding) == 1:
        return holding[0]
    raise PermanentError(
        "vm_has_several_nics",
        f"{vm_id} has {len(own)} NICs ({', '.join(n.name for n in own)}); cannot tell which "
        "one (name it in the configuration: nicId)",
    )


def plan_acquire(
    nics: list[NicView],
    vm_id: str,
    address: str,
    member_vm_ids: tuple[str, ...] = (),
    force: bool = False,
    touched: tuple[str, ...] = (),
) -> Plan:
    """Remove the IP from every other NIC, then add it to the VM's NIC (if not there).

    Only the NICs of the cluster's members (``member_vm_ids``; empty: not
    checked) lose the IP: a NIC of any other VM, or of none, holding it is a
    PermanentError ``held_by_non_member`` unless an operator forces it (``force``).
    """
    target = find_vm_nic(nics, vm_id, address)
    holders = find_ip_holders(nics, address)
    changes = []
    for nic in holders:
        if nic.id == target.id:
            continue
        if member_vm_ids and not force and not any(_same_id(nic.vm_id, m) for m in member_vm_ids):
            owner = f"VM {nic.vm_id}" if nic.vm_id else "no VM"
            raise PermanentError(
                "held_by_non_member",
                f"{address} is on NIC {nic.id} (attached to {owner}), which is not a member of "
                "this cluster; nothing was changed (an operator may force the move)",
            )
        config = nic.config_holding(address)
        if config is not None and config.primary:
            raise PermanentError(
                "ip_is_primary_elsewhere",
                f"{address} is the primary address of {nic.name}; it cannot be moved",
            )
        changes.append(Change("remove", nic.id, nic.name))
    if target.config_holding(address) is None:
        changes.append(Change("add", target.id, target.name))
    return _with_states(Plan(target, tuple(n.id for n in holders), tuple(changes)), nics, touched)


def plan_release(
    nics: list[NicView], vm_id: str, address: str, touched: tuple[str, ...] = ()
) -> Plan:
    """Remove the IP from the VM's own NIC; never touch another NIC."""
    target = find_vm_nic(nics, vm_id, address)
    holders = find_ip_holders(nics, address)
    config = target.config_holding(address)
    if config is None:
        # Already released; a NIC this request wrote must still end Succeeded.
        return _with_states(Plan(target, tuple(n.id for n in holders), ()), nics, touched, False)
    if config.primary:
        raise PermanentError(
            "ip_is_primary", f"{address} is the primary address of {target.name}; not releasing it"
        )
    return Plan(target, tuple(n.id for n in holders), (Change("remove", target.id, target.name),))


def _with_states(
    plan: Plan, nics: list[NicView], touched: tuple[str, ...], include_target: bool = True
) -> Plan:
    """Add what the NICs' provisioning states still require once the writes are planned.

    The NIC that must end with the IP (the target of an acquire) and every NIC
    this request wrote must be Succeeded: one left Failed gets a repair (a PUT
    of the NIC as it is), one still Updating is waited for. A NIC with a
    planned write needs no repair of its own: that write is one.
    """
    planned = {c.nic_id.lower() for c in plan.changes}
    relevant = {t.lower() for t in touched}
    if include_target:
        relevant.add(plan.target_nic.id.lower())
    repairs: list[Change] = []
    waiting: list[str] = []
    for nic in nics:
        key = nic.id.lower()
        if key not in relevant or key in planned or nic.provisioning_state == SUCCEEDED:
            continue
        if nic.provisioning_state == FAILED:
            repairs.append(Change("repair", nic.id, nic.name))
        else:
            waiting.append(nic.id)
    return Plan(plan.target_nic, plan.holders, (*plan.changes, *repairs), tuple(waiting))


def plan_nic_edit(nic: NicView, change: Change, address: str, ip_config_name: str) -> NicEdit:
    """What to do to this NIC's ip-configurations for ``change``.

    Re-decided on the NIC as just read, so a retried or repeated step is a no-op
    when it already happened. The new ip-config joins the subnet of the NIC's
    primary one, with a static address. A repair rewrites a NIC that ARM left
    Failed, and is a no-op on one that is Succeeded again. Raises
    PermanentError when it cannot.
    """
    if change.kind == "repair":
        return NicEdit(rewrite=nic.provisioning_state == FAILED)
    if change.kind == "remove":
        names = tuple(c.name for c in nic.ip_configs if c.address == address and not c.primary)
        return NicEdit(remove_names=names)
    if nic.config_holding(address) is not None:
        return NicEdit()
    primary = next((c for c in nic.ip_configs if c.primary), None)
    if primary is None or not primary.subnet_id:
        raise PermanentError("nic_has_no_primary", f"{nic.name} has no primary ip-configuration")
    if any(c.name == ip_config_name for c in nic.ip_configs):
        raise PermanentError(
            "ip_config_name_taken",
            f"{nic.name} already has an ip-configuration named {ip_config_name} "
            "with another address",
        )
    return NicEdit(add_name=ip_config_name, add_address=address, add_subnet_id=primary.subnet_id)


# ARM's PrivateIPAddressIsAllocated message ends "… already allocated to resource <id>."
_ALLOCATED_TO = re.compile(r"allocated to resource (/\S+?)\.?\s*$")


def foreign_holder(arm_message: str, plan: Plan) -> str | None:
    """The resource ARM says holds the address, when it is none of the plan's NICs.

    ``arm_message`` is ARM's PrivateIPAddressIsAllocated message, which names the
    holding ip-configuration. None when the message names no resource, or names an
    ip-configuration of a NIC the plan already knows holds the address (re-planning
    handles that one).
    """
    match = _ALLOCATED_TO.search(arm_message)
    if match is None:
        return None
    holder = match.group(1)
    nic_id = re.split(r"/ipConfigurations/", holder, flags=re.IGNORECASE)[0]
    if any(_same_id(nic_id, held) for held in plan.holders):
        return None
    return holder


_NIC_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Network/networkInterfaces/[^/]+$",
    re.IGNORECASE,
)


def holder_nic_to_read(
    holder: str, subscription_id: str, resource_group: str, read: Iterable[str]
) -> str | None:
    """The NIC to read because ARM named one of its ip-configurations as the holder.

    A move reads only its members' NICs; ARM's PrivateIPAddressIsAllocated names
    any other holder (``foreign_holder``). When that is an ip-configuration of a
    NIC in the cluster's resource group (where the app's role lets it read) that
    the move has not read, the move reads it and plans again: a member's NIC the
    configuration does not name, or a NIC that is not a member's. None for
    anything else (another kind of resource, another resource group, a NIC
    already read): ARM's answer then stands.
    """
    nic_id = re.split(r"/ipConfigurations/", holder, flags=re.IGNORECASE)[0]
    match = _NIC_ID.match(nic_id)
    if match is None:
        return None
    if not (_same_id(match["sub"], subscription_id) and _same_id(match["rg"], resource_group)):
        return None
    if any(_same_id(nic_id, done) for done in read):
        return None
    return nic_id


def verify_acquired(nics: list[NicView], vm_id: str, address: str) -> str | None:
    """None when the IP is on the VM's NIC and no other; else what is wrong."""
    target = find_vm_nic(nics, vm_id, address)
    holders = find_ip_holders(nics, address)
    if [n.id for n in holders] == [target.id]:
        return None
    names = ", ".join(n.name for n in holders) or "no NIC"
    return f"{address} is on {names}, expected only on {target.name}"


def verify_released(nics: list[NicView], vm_id: str, address: str) -> str | None:
    """None when the IP is not on the VM's NIC; else what is wrong."""
    target = find_vm_nic(nics, vm_id, address)
    if target.config_holding(address) is None:
        return None
    return f"{address} is still on {target.name}"
