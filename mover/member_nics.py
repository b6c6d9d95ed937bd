"""Which NICs a move reads: its cluster members' NICs, by id, in parallel.

A member's NIC is named in the configuration (``nicId``), or learned from its
VM's ``networkProfile`` once and kept: for the process, and by the IP's lock for
the next move (``MemberRef.known_nic_ids``). A learned NIC that is gone, or no
longer attached to that VM, is learned again. NICs that ARM named
as holding the IP (see ``mover.planning.holder_nic_to_read``) are read as they
are. The ARM reads themselves are passed in, so nothing here talks to Azure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import PermanentError
from .planning import NicView

__all__ = ["MemberNics", "MemberRef", "learned_member_nics", "nic_ids_of_vm"]

T = TypeVar("T")

# Reads one NIC by id: None when ARM says there is no such NIC (404).
NicReader = Callable[[str], Awaitable[NicView | None]]
# Reads one VM by id: its resource as ARM returns it.
VmReader = Callable[[str], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class MemberRef:
    """A member whose NICs a move reads: its VM, the NIC the configuration names, and
    the NICs an earlier move learned from the VM (kept in durable state)."""

    vm_id: str
    nic_id: str | None = None
    known_nic_ids: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemberRef:
        """From the activity input's form, ``{"vmId", "nicId"?, "knownNicIds"?}``."""
        return cls(data["vmId"], data.get("nicId"), tuple(data.get("knownNicIds") or ()))

    def to_dict(self) -> dict[str, Any]:
        """The activity input's form."""
        return {
            "vmId": self.vm_id,
            **({"nicId": self.nic_id} if self.nic_id else {}),
            **({"knownNicIds": list(self.known_nic_ids)} if self.known_nic_ids else {}),
        }


def learned_member_nics(
    members: Iterable[MemberRef], views: Iterable[NicView]
) -> dict[str, list[str]]:
    """The NIC ids of the members that the configuration does not name, from the NICs
    a move read (each NIC names the VM it is attached to), keyed by lower-case VM id:
    what the next move may start from instead of reading the VMs."""
    unnamed = {_key(m.vm_id) for m in members if m.nic_id is None}
    learned: dict[str, list[str]] = {}
    for view in views:
        if view.vm_id is not None and _key(view.vm_id) in unnamed:
            learned.setdefault(_key(view.vm_id), []).append(view.id)
    return learned


def nic_ids_of_vm(vm: Mapping[str, Any]) -> tuple[str, ...]:
    """The NIC ids of a VM resource (``properties.networkProfile.networkInterfaces``).

    Raises PermanentError when the VM lists none (a VM defined only by
    ``networkInterfaceConfigurations`` of a scale set, say).
    """
    profile = (vm.get("properties") or {}).get("networkProfile") or {}
    ids = tuple(
        ref["id"]
        for ref in profile.get("networkInterfaces") or ()
        if isinstance(ref, dict) and isinstance(ref.get("id"), str)
    )
    if not ids:
        raise PermanentError(
            "vm_has_no_nic",
            f"{vm.get('id', 'the VM')} lists no network interface in its networkProfile; "
            "name the member's NIC in the configuration (nicId)",
        )
    return ids


def _key(resource_id: str) -> str:
    # ARM resource ids are case-insensitive.
    return resource_id.lower()


def _attached_to(view: NicView | None, vm_id: str) -> bool:
    return view is not None and view.vm_id is not None and _key(view.vm_id) == _key(vm_id)


class MemberNics:
    """The members' NIC ids learned from their VMs, kept for the process."""

    def __init__(self) -> None:
        self._learned: dict[str, tuple[str, ...]] = {}

    def forget(self) -> None:
        """Forget every learned NIC id (the next read learns them again)."""
        self._learned.clear()

    async def read(
        self,
        members: Iterable[MemberRef],
        others: Iterable[str],
        read_vm: VmReader,
        read_nic: NicReader,
    ) -> list[NicView]:
        """The members' NICs and the ``others``, each read once, all in parallel.

        A NIC among ``others`` that does not exist is left out. Raises
        PermanentError when a NIC the configuration names does not exist; what
        ``read_vm`` and ``read_nic`` raise goes through.
        """
        members = list(members)
        for member in members:
            # What an earlier move learned (durable state) counts as learned here too.
            if member.nic_id is None and member.known_nic_ids:
                self._learned.setdefault(_key(member.vm_id), member.known_nic_ids)
        learned_before = {_key(m.vm_id) for m in members if _key(m.vm_id) in self._learned}
        named = await self._nic_ids(members, read_vm)
        views: dict[str, NicView | None] = {}
        await self._read_into(views, [*_flatten(named.values()), *others], read_nic)
        stale = [
            m
            for m in members
            if m.nic_id is None
            and _key(m.vm_id) in learned_before
            and not all(_attached_to(views[_key(n)], m.vm_id) for n in named[_key(m.vm_id)])
        ]
        if stale:
            # Detached, deleted or replaced since it was learned: ask the VM again.
            for member in stale:
                self._learned.pop(_key(member.vm_id), None)
            named.update(await self._nic_ids(stale, read_vm))
            await self._read_into(views, _flatten(named.values()), read_nic)
        for member in members:
            if member.nic_id is not None and views[_key(member.nic_id)] is None:
                raise PermanentError(
                    "nic_not_found",
                    f"the NIC {member.nic_id} that the configuration names for "
                    f"{member.vm_id} does not exist",
                )
        return [view for view in views.values() if view is not None]

    async def _nic_ids(
        self, members: list[MemberRef], read_vm: VmReader
    ) -> dict[str, tuple[str, ...]]:
        """Each member's NIC ids: as configured, as learned, or learned now (in parallel)."""
        to_learn = list(
            {
                _key(m.vm_id): m.vm_id
                for m in members
                if m.nic_id is None and _key(m.vm_id) not in self._learned
            }.values()
        )
        vms = await _all(read_vm(vm_id) for vm_id in to_learn)
        for vm_id, vm in zip(to_learn, vms, strict=True):
            self._learned[_key(vm_id)] = nic_ids_of_vm(vm)
        return {
            _key(m.vm_id): (m.nic_id,) if m.nic_id else self._learned[_key(m.vm_id)]
            for m in members
        }

    @staticmethod
    async def _read_into(
        views: dict[str, NicView | None], nic_ids: Iterable[str], read_nic: NicReader
    ) -> None:
        """Read the NICs not read yet, in parallel."""
        pending = list({_key(n): n for n in nic_ids if _key(n) not in views}.values())
        for nic_id, view in zip(pending, await _all(read_nic(n) for n in pending), strict=True):
            views[_key(nic_id)] = view


async def _all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Run the calls in parallel; raise the first failure once every call has ended."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def _flatten(groups: Iterable[tuple[str, ...]]) -> list[str]:
    return [item for group in groups for item in group]
