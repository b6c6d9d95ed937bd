"""The network resource provider's behaviour: NIC reads and writes, VNets, IP checks."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import ArmError, not_found
from .lro import Operation, new_operation
from .nic_rules import (
    NIC_READ_ONLY_PROPERTIES,
    SubnetInfo,
    check_if_match,
    normalize_ip_configurations,
    reserved_addresses,
)
from .opsign import OperationSigner
from .resources import IPCONFIG_TYPE, NIC_TYPE, new_etag, subnet_json, subnet_network, vnet_json
from .settings import Settings
from .state import AzureState

__all__ = ["LroFailure", "NetworkService", "PutResult", "group_in_id"]

_DNS_READ_ONLY = ("appliedDnsServers", "internalFqdn", "internalDomainNameSuffix")


@dataclass(frozen=True)
class LroFailure:
    """How an injected LRO failure ends: the async operation's error."""

    code: str
    message: str


@dataclass(frozen=True)
class PutResult:
    """Outcome of an accepted NIC PUT.

    ``operation.sync``: the PUT is answered when the operation ends (hold it until
    ``operation.done_at``); ``conflict``: another update was in progress, so the NIC is
    unchanged and the operation has already failed with AnotherOperationInProgress.
    """

    resource: dict[str, Any]
    created: bool
    operation: Operation
    conflict: bool = False


class NetworkService:
    """NIC, VNet and subnet operations on top of ``AzureState``."""

    def __init__(self, state: AzureState, settings: Settings) -> None:
        self.state = state
        self.settings = settings
        self.base_url = ""  # set once the ARM server listens; used in error messages
        # Replaced by one keyed on the state directory's CA when the servers start.
        self.signer = OperationSigner(
            hashlib.sha256(state.topology.subscription_id.encode()).digest(), b"local"
        )
        self._updates = 0  # accepted NIC updates, for the "mixed" mode

    # -- NICs -------------------------------------------------------------------------

    def get_nic(self, name: str, group: str | None = None) -> dict[str, Any]:
        """The NIC called ``name`` (case-insensitive), in resource group ``group`` if given.

        Raises ArmError 404.
        """
        nic = self.state.nics.get(name.lower())
        if nic is None or (group is not None and group_in_id(nic["id"]) != group.lower()):
            raise not_found(
                "Microsoft.Network/networkInterfaces",
                name,
                group or self.state.topology.resource_group,
            )
        return nic

    def list_nics(self, group: str | None = None) -> list[dict[str, Any]]:
        """The NICs of resource group ``group`` (None: all), in a stable order (by name)."""
        wanted = group.lower() if group is not None else None
        return [
            nic
            for nic in (self.state.nics[key] for key in sorted(self.state.nics))
            if wanted is None or group_in_id(nic["id"]) == wanted
        ]

    def operation_url(self, operation: Operation, api_version: str, signed: bool = True) -> str:
        """The ``Azure-AsyncOperation`` URL of ``operation``, signed as Azure's newer ones.

        Unsigned, it is the form ARM quotes in AnotherOperationInProgress messages.
        """
        path = self.state.ids.operation(operation.location, operation.id)
        url = f"{self.base_url}{path}?api-version={api_version}"
        if signed:
            url += self.signer.query(operation.id, operation.started)
        return url

    def restart_alternation(self) -> None:
        """The next update is the first of the "mixed" mode again (sync)."""
        self._updates = 0

    def _answer_in_put(self) -> bool:
        """Whether the next accepted NIC update is answered synchronously."""
        mode = self.settings.nic_update_mode
        self._updates += 1
        if mode == "mixed":
            return self._updates % 2 == 1
        return mode == "sync"

    def put_nic(
        self,
        name: str,
        body: Any,
        *,
        if_match: str | None,
        if_none_match: str | None,
        now: float,
        api_version: str,
        operation_id: str,
        lro_failure: LroFailure | None = None,
        group: str | None = None,
    ) -> PutResult:
        """Create or replace NIC ``name`` with ``body`` (a whole resource, PUT semantics).

        Read-only fields in ``body`` are ignored; omitted writeable fields fall back to
        defaults, as with ARM. The NIC shows provisioningState Updating until its
        operation ends. A PUT while another update of the NIC is in progress is accepted
        and its operation fails with AnotherOperationInProgress (as recorded). ``group``:
        the resource group of the request's path (None: the NIC's own, or the topology's).
        Raises ArmError (400, 409, 412) when the write is refused.
        """
        key = name.lower()
        existing = self.state.nics.get(key)
        if (
            existing is not None
            and group is not None
            and group_in_id(existing["id"]) != group.lower()
        ):
            # Azure would create another NIC of that name in ``group``; the emulator keys
            # NICs by name, so it refuses plainly instead.
            raise ArmError(
                409,
                "InvalidResourceName",
                f"The local Azure keeps NIC names unique across resource groups: "
                f"{existing['id']} exists; choose another name for a NIC in '{group}'.",
            )
        nic_id = existing["id"] if existing else self.state.ids.nic(name, group)
        check_if_match(if_match, existing["etag"] if existing else None, nic_id)
        if if_none_match and if_none_match.strip() == "*" and existing is not None:
            raise ArmError(
                412, "PreconditionFailed", f"Resource {nic_id} already exists (If-None-Match: *)."
            )
        if not isinstance(body, dict):
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: "
                "expected a JSON object.",
            )
        self._check_location(nic_id, body.get("location"), existing)
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The 'properties' member must be an object."
            )

        configs = normalize_ip_configurations(
            nic_id,
            props.get("ipConfigurations"),
            self.subnets(),
            self.holders(exclude=key),
            _allocate,
        )
        if existing is not None and key in self.state.pending:
            return self._conflict(key, existing, operation_id, now, api_version)
        etag = new_etag()
        resource = self._build_nic(nic_id, existing, body, props, configs, etag)
        operation = new_operation(
            operation_id,
            key,
            self.state.topology.location,
            now,
            self.settings.nic_update_seconds,
            sync=self._answer_in_put(),
        )
        if lro_failure is not None:
            operation.fail_code = lro_failure.code
            operation.fail_message = lro_failure.message
        self.state.nics[key] = resource
        self.state.start_operation(operation)
        self.state.save()
        return PutResult(copy.deepcopy(resource), existing is None, operation)

    def _conflict(
        self, key: str, nic: dict[str, Any], operation_id: str, now: float, api_version: str
    ) -> PutResult:
        """Accept a PUT that meets an update in progress; its operation fails at once."""
        pending = self.state.operations[self.state.pending[key]]
        operation = Operation(
            id=operation_id,
            nic=key,
            location=pending.location,
            started=now,
            done_at=now,
            status="Failed",
            fail_code="AnotherOperationInProgress",
            fail_message=(
                "Another operation on this or dependent resource is in progress. To retrieve "
                "status of the operation use uri: "
                f"{self.operation_url(pending, api_version, signed=False)}."
            ),
        )
        self.state.record_operation(operation)
        self.state.save()
        return PutResult(copy.deepcopy(nic), False, operation, conflict=True)

    def set_nic_raw(self, name: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Store ``resource`` as NIC ``name`` without checks (control API), fresh etag."""
        key = name.lower()
        resource = copy.deepcopy(resource)
        resource.setdefault("name", name)
        resource.setdefault("id", self.state.ids.nic(resource["name"]))
        resource.setdefault("type", NIC_TYPE)
        resource.setdefault("location", self.state.topology.location)
        resource.setdefault("properties", {}).setdefault("provisioningState", "Succeeded")
        etag = new_etag()
        resource["etag"] = etag
        for config in resource["properties"].get("ipConfigurations", []):
            config["etag"] = etag
            config.setdefault("id", f"{resource['id']}/ipConfigurations/{config['name']}")
            config.setdefault("type", IPCONFIG_TYPE)
        self.state.pending.pop(key, None)
        self.state.nics[key] = resource
        self.state.applied[key] = copy.deepcopy(resource["properties"].get("ipConfigurations", []))
        self.state.save()
        return resource

    def _check_location(self, nic_id: str, location: Any, existing: dict[str, Any] | None) -> None:
        wanted = self.state.topology.location
        if location is None or location == "":
            if existing is None:
                raise ArmError(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            return
        if str(location).replace(" ", "").lower() == wanted.lower():
            return
        if existing is not None:
            raise ArmError(
                409,
                "InvalidResourceLocation",
                f"The resource '{existing['name']}' already exists in location '{wanted}' in "
                f"resource group '{_group_name(existing['id'])}'. A resource with the same "
                f"name cannot be created in location '{location}'. "
                "Please select a new resource name.",
            )
        raise ArmError(
            400,
            "InvalidResourceReference",
            f"Resource {nic_id} in location '{location}' references resources in location "
            f"'{wanted}'; both resources must be in the same region.",
        )

    def _build_nic(
        self,
        nic_id: str,
        existing: dict[str, Any] | None,
        body: dict[str, Any],
        props: dict[str, Any],
        configs: list[dict[str, Any]],
        etag: str,
    ) -> dict[str, Any]:
        old = existing["properties"] if existing else {}
        new_props: dict[str, Any] = {
            "enableIPForwarding": False,
            "enableAcceleratedNetworking": False,
            "disableTcpStateTracking": False,
            "nicType": "Standard",
            "auxiliaryMode": "None",
            "auxiliarySku": "None",
        }
        new_props.update(
            {k: copy.deepcopy(v) for k, v in props.items() if k not in NIC_READ_ONLY_PROPERTIES}
        )
        dns = dict(props.get("dnsSettings") or {})
        for read_only in _DNS_READ_ONLY:
            dns.pop(read_only, None)
        dns.setdefault("dnsServers", [])
        dns["appliedDnsServers"] = list(dns["dnsServers"])
        old_suffix = (old.get("dnsSettings") or {}).get("internalDomainNameSuffix")
        dns["internalDomainNameSuffix"] = old_suffix or (
            f"{self.state.topology.tenant_id[:8]}.cx.internal.cloudapp.net"
        )
        new_props["dnsSettings"] = dns
        new_props["ipConfigurations"] = [
            {
                "name": config["name"],
                "id": f"{nic_id}/ipConfigurations/{config['name']}",
                "etag": etag,
                "type": IPCONFIG_TYPE,
                "properties": {"provisioningState": "Updating", **config["properties"]},
            }
            for config in configs
        ]
        new_props["provisioningState"] = "Updating"
        new_props["resourceGuid"] = old.get("resourceGuid") or str(uuid.uuid4())
        new_props["vnetEncryptionSupported"] = False
        new_props["hostedWorkloads"] = []
        new_props["tapConfigurations"] = []
        for kept in ("macAddress", "virtualMachine", "primary"):
            if kept in old:
                new_props[kept] = copy.deepcopy(old[kept])
        resource: dict[str, Any] = {
            "name": existing["name"] if existing else nic_id.rsplit("/", 1)[1],
            "id": nic_id,
            "etag": etag,
            "type": NIC_TYPE,
            "location": self.state.topology.location,
            "kind": "Regular",
            "properties": new_props,
        }
        if isinstance(body.get("tags"), dict) and body["tags"]:
            resource["tags"] = dict(body["tags"])
        return resource

    # -- addresses --------------------------------------------------------------------

    def subnets(self) -> dict[str, SubnetInfo]:
        """Every subnet, keyed by lower-case id."""
        ids = self.state.ids
        return {
            ids.subnet(vnet.name, subnet.name).lower(): SubnetInfo(
                ids.subnet(vnet.name, subnet.name), subnet_network(subnet.prefix)
            )
            for vnet in self.state.topology.vnets
            for subnet in vnet.subnets
        }

    def holders(self, exclude: str | None = None) -> dict[str, str]:
        """Private IP -> id of what holds it: an ip-configuration of a NIC (NIC ``exclude``
        left out), or a resource the emulator does not model (``foreign_holders``)."""
        held: dict[str, str] = dict(self.state.foreign_holders)
        for key, nic in self.state.nics.items():
            if key == exclude:
                continue
            for config in nic["properties"].get("ipConfigurations", []):
                address = config.get("properties", {}).get("privateIPAddress")
                if address:
                    held[address] = (
                        config.get("id") or f"{nic['id']}/ipConfigurations/{config['name']}"
                    )
        return held

    def ip_holder(self, ip: str) -> str | None:
        """Name of the NIC holding ``ip``, or None (also when something else holds it)."""
        config_id = self.holders().get(ip)
        if config_id is None or "/networkinterfaces/" not in config_id.lower():
            return None
        return config_id.split("/ipConfigurations/")[0].rsplit("/", 1)[1]

    def set_foreign_holder(self, ip: str, resource_id: str | None) -> None:
        """Let a resource outside the model hold ``ip`` (None: let it go)."""
        if resource_id:
            self.state.foreign_holders[ip] = resource_id
        else:
            self.state.foreign_holders.pop(ip, None)
        self.state.save()

    # -- VNets ------------------------------------------------------------------------

    def _vnet_spec(self, name: str, group: str | None = None) -> Any:
        """VNet ``name``; VNets are in the topology's resource group only."""
        topology = self.state.topology
        vnet = next((v for v in topology.vnets if v.name.lower() == name.lower()), None)
        if vnet is None or (group is not None and group.lower() != topology.resource_group.lower()):
            raise not_found(
                "Microsoft.Network/virtualNetworks", name, group or topology.resource_group
            )
        return vnet

    def _subnet_json(self, vnet: Any, subnet: Any) -> dict[str, Any]:
        ids = self.state.ids
        subnet_id = ids.subnet(vnet.name, subnet.name).lower()
        users = [
            config["id"]
            for key in sorted(self.state.nics)
            for config in self.state.nics[key]["properties"].get("ipConfigurations", [])
            if config.get("properties", {}).get("subnet", {}).get("id", "").lower() == subnet_id
        ]
        etag = self.state.vnet_etags[vnet.name.lower()]
        return subnet_json(
            self.state.topology, ids, vnet.name, subnet.name, subnet.prefix, users, etag
        )

    def get_vnet(self, name: str, group: str | None = None) -> dict[str, Any]:
        """VNet ``name`` with its subnets. Raises ArmError 404."""
        vnet = self._vnet_spec(name, group)
        subnets = [self._subnet_json(vnet, s) for s in vnet.subnets]
        return vnet_json(
            self.state.topology,
            self.state.ids,
            vnet.name,
            subnets,
            self.state.vnet_etags[vnet.name.lower()],
        )

    def list_vnets(self, group: str | None = None) -> list[dict[str, Any]]:
        """The VNets of ``group`` (all of them are in the topology's resource group)."""
        topology = self.state.topology
        if group is not None and group.lower() != topology.resource_group.lower():
            return []
        return [self.get_vnet(v.name) for v in topology.vnets]

    def get_subnet(self, vnet_name: str, name: str, group: str | None = None) -> dict[str, Any]:
        """Subnet ``name`` of VNet ``vnet_name``. Raises ArmError 404 (code NotFound)."""
        vnet = self._vnet_spec(vnet_name, group)
        subnet = next((s for s in vnet.subnets if s.name.lower() == name.lower()), None)
        if subnet is None:
            raise ArmError(
                404,
                "NotFound",
                f"Resource {self.state.ids.subnet(vnet.name, name)} not found.",
            )
        return self._subnet_json(vnet, subnet)

    def check_ip(self, vnet_name: str, ip: str | None, group: str | None = None) -> dict[str, Any]:
        """``checkIPAddressAvailability``: is ``ip`` free in the VNet, and if not, who has it."""
        vnet = self._vnet_spec(vnet_name, group)
        if not ip:
            raise ArmError(
                400,
                "PrivateIPAddressIsNullOrEmpty",
                "Private IP address is null or empty in the CheckIpAddressAvailability call. "
                "Specify IpAddress=$(ipaddress) as a query parameter in the request URI.",
            )
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise ArmError(
                400, "PrivateIPAddressInvalid", f"Private IP address {ip} is not valid."
            ) from None
        subnet = next(
            (s for s in vnet.subnets if address in subnet_network(s.prefix)),
            None,
        )
        if subnet is None:
            raise ArmError(
                400,
                "PrivateIPAddressNotInAnySubnet",
                f"Private IP address {ip} does not belong to any subnet of virtual network "
                f"{self.state.ids.vnet(vnet.name)}.",
            )
        network = subnet_network(subnet.prefix)
        held = self.holders()
        reserved = reserved_addresses(network)
        if str(address) not in held and str(address) not in reserved:
            return {"available": True, "isPlatformReserved": False}
        result: dict[str, Any] = {
            "available": False,
            "availableIPAddresses": _free_after(network, address, held, 5),
            "isPlatformReserved": str(address) in reserved,
        }
        if str(address) in held and self.settings.in_use_with_resource:
            # In neither the API definition nor azure-mgmt-network's model, so off by
            # default. When on: the holding NIC's id (not the ip-configuration's), which
            # is what the vendor script expects (it takes the last path segment).
            result["inUseWithResource"] = held[str(address)].split("/ipConfigurations/")[0]
        return result


def group_in_id(resource_id: str) -> str:
    """The resource group named in a resource id, lower-case ("" when it names none)."""
    return _group_name(resource_id).lower()


def _group_name(resource_id: str) -> str:
    parts = resource_id.split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[index + 1]
    return ""


def _allocate(subnet: SubnetInfo, taken: set[str]) -> str | None:
    reserved = reserved_addresses(subnet.network)
    for host in subnet.network.hosts():
        text = str(host)
        if text not in taken and text not in reserved:
            return text
    return None


def _free_after(network: Any, address: Any, held: dict[str, str], count: int) -> list[str]:
    reserved = reserved_addresses(network)
    free: list[str] = []
    candidate = address + 1
    while candidate in network and len(free) < count:
        if str(candidate) not in held and str(candidate) not in reserved:
            free.append(str(candidate))
        candidate += 1
    return free
