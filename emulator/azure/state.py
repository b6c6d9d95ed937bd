"""Mutable ARM state (NICs, operations, identity switches) and its file in the state dir.

``state.json`` is rewritten atomically (temp file + rename) after every change (coalesced
to one write per 0.25 s for large topologies, see ``save``), so
a restart with the same directory keeps NIC state, and a crash never leaves half
a file.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from .lro import Operation
from .resources import ResourceIds, initial_nic, new_etag
from .topology import Topology, topology_from_dict

__all__ = ["AzureState"]

_STATE_FILE = "state.json"
_MAX_OPERATIONS = 20000
_SLOW_SAVE_SECONDS = 0.01
_COALESCE_SECONDS = 0.25


class AzureState:
    """NIC resources (ARM JSON, keyed by lower-case name), operations, identity switches."""

    def __init__(self, topology: Topology, directory: Path | None) -> None:
        self.topology = topology
        self.ids = ResourceIds(topology)
        self.directory = directory
        self.nics: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, str] = {}  # nic key -> id of its InProgress operation
        self.operations: OrderedDict[str, Operation] = OrderedDict()
        self.identity_enabled: dict[str, bool] = {}
        # Claims that IMDS puts into a VM's tokens over what Entra ID would (a fault
        # injection for the node's doctor: a wrong audience, a delegated-looking token).
        self.identity_claims: dict[str, dict[str, Any]] = {}
        self.vnet_etags: dict[str, str] = {}
        # ip-configurations as last applied to the host (what IMDS shows): a NIC that is
        # still Updating, or whose update Failed, keeps showing the previous ones.
        self.applied: dict[str, list[dict[str, Any]]] = {}
        # Private IPs held by resources the emulator does not model (a load balancer's
        # frontend, a NIC in another resource group): address -> holder's resource id.
        self.foreign_holders: dict[str, str] = {}
        self._last_save_seconds = 0.0
        self._dirty = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self.reset()

    # -- lifecycle --------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the topology's initial state (NICs, identities, no operations)."""
        self.nics = {}
        for vm in self.topology.vms:
            for index, nic in enumerate(vm.nics):
                self.nics[nic.name.lower()] = initial_nic(
                    self.topology, self.ids, vm, nic, index == 0
                )
        self.applied = {key: _configs(nic) for key, nic in self.nics.items()}
        self.pending = {}
        self.operations = OrderedDict()
        self.foreign_holders = {}
        self.identity_enabled = {vm.name.lower(): vm.identity_enabled for vm in self.topology.vms}
        self.identity_claims = {}
        self.vnet_etags = {v.name.lower(): new_etag() for v in self.topology.vnets}

    @classmethod
    def open(cls, directory: Path, topology: Topology) -> AzureState:
        """Load ``directory/state.json`` if present (its topology wins), else start fresh."""
        path = directory / _STATE_FILE
        if path.exists():
            raw = json.loads(path.read_text(encoding="utf-8"))
            state = cls(topology_from_dict(raw["topology"]), directory)
            state.nics = raw["nics"]
            state.pending = raw.get("pending", {})
            state.operations = OrderedDict(
                (op["id"], Operation.from_dict(op)) for op in raw.get("operations", [])
            )
            state.identity_enabled.update(raw.get("identity_enabled", {}))
            state.applied = raw.get("applied") or {k: _configs(n) for k, n in state.nics.items()}
            state.foreign_holders = raw.get("foreign_holders", {})
            state.settle(time.time())
            return state
        state = cls(topology, directory)
        state.save()
        return state

    def save(self) -> None:
        """Persist the state: at once while a write is cheap, else coalesced (large topologies).

        Writing a scale topology takes a few hundred ms; rewriting it on every NIC PUT
        would throttle benchmarks. When the last write took longer than
        ``_SLOW_SAVE_SECONDS``, writes are coalesced to one per ``_COALESCE_SECONDS``.
        ``flush()`` (called on shutdown) writes anything pending.
        """
        if self.directory is None:
            return
        if self._last_save_seconds <= _SLOW_SAVE_SECONDS:
            self.flush()
            return
        self._dirty = True
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_handle = loop.call_later(_COALESCE_SECONDS, self.flush)

    def flush(self) -> None:
        """Write ``state.json`` atomically now (no-op without a state directory)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._dirty = False
        if self.directory is None:
            return
        started = time.perf_counter()
        raw = {
            "topology": self.topology.to_dict(),
            "nics": self.nics,
            "pending": self.pending,
            "operations": [op.to_dict() for op in self.operations.values()],
            "identity_enabled": self.identity_enabled,
            "applied": self.applied,
            "foreign_holders": self.foreign_holders,
        }
        path = self.directory / _STATE_FILE
        tmp = path.with_name(f".{_STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(raw, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
        self._last_save_seconds = time.perf_counter() - started

    # -- operations -------------------------------------------------------------------

    def start_operation(self, operation: Operation) -> None:
        """Record ``operation`` as the NIC's pending update."""
        self.record_operation(operation)
        self.pending[operation.nic] = operation.id

    def record_operation(self, operation: Operation) -> None:
        """Keep ``operation`` pollable (one that is not the NIC's pending update, too)."""
        self.operations[operation.id] = operation
        while len(self.operations) > _MAX_OPERATIONS:
            oldest = next(iter(self.operations))
            if not self.operations[oldest].finished:
                break
            del self.operations[oldest]

    def settle(self, now: float) -> bool:
        """Finish every operation whose time has come; True when anything changed."""
        changed = False
        for nic_key, operation_id in list(self.pending.items()):
            operation = self.operations.get(operation_id)
            if operation is None or operation.done_at > now:
                continue
            operation.status = "Failed" if operation.fail_code else "Succeeded"
            del self.pending[nic_key]
            nic = self.nics.get(nic_key)
            if nic is not None:
                # After an update answered Updating, the network RP writes the resource
                # again when provisioning ends, so the etag a client saw during the update
                # is stale afterwards (a guess); an update answered in the PUT itself keeps
                # the etag it answered with (recorded).
                etag = nic["etag"] if operation.sync else new_etag()
                set_provisioning_state(nic, operation.status, etag)
                if operation.status == "Succeeded":
                    self.applied[nic_key] = _configs(nic)
            changed = True
        if changed:
            self.save()
        return changed

    def settle_now(self) -> bool:
        """``settle`` at the current wall-clock time."""
        return self.settle(time.time())

    # -- identities -------------------------------------------------------------------

    def set_identity_enabled(self, vm_name: str, enabled: bool) -> None:
        """Turn a VM's system-assigned identity on or off."""
        self.identity_enabled[vm_name.lower()] = enabled
        self.save()


def _configs(nic: dict[str, Any]) -> list[dict[str, Any]]:
    return copy.deepcopy(nic["properties"].get("ipConfigurations", []))


def set_provisioning_state(nic: dict[str, Any], state: str, etag: str) -> None:
    """Set the provisioning state and etag of a NIC and of its ip-configurations."""
    nic["etag"] = etag
    nic["properties"]["provisioningState"] = state
    for config in nic["properties"].get("ipConfigurations", []):
        config["etag"] = etag
        config.setdefault("properties", {})["provisioningState"] = state
