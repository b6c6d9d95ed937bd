"""Validation of a NIC PUT, as plain functions: body in, normalized body or ArmError out.

The order of checks and the exact messages are guesses (docs/local-azure.md lists
them); the error codes are the ones Azure's network resource provider uses where
they are known.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ArmError

__all__ = [
    "NIC_READ_ONLY_PROPERTIES",
    "SubnetInfo",
    "check_if_match",
    "normalize_ip_configurations",
    "reserved_addresses",
]

# Properties ARM computes itself; a PUT that sends them back has them ignored.
NIC_READ_ONLY_PROPERTIES = frozenset(
    {
        "provisioningState",
        "resourceGuid",
        "macAddress",
        "virtualMachine",
        "primary",
        "hostedWorkloads",
        "tapConfigurations",
        "privateEndpoint",
        "privateLinkService",
        "vnetEncryptionSupported",
        "defaultOutboundConnectivityEnabled",
        "dscpConfiguration",
    }
)
_IPCONFIG_READ_ONLY_PROPERTIES = frozenset({"provisioningState", "privateLinkConnectionProperties"})


@dataclass(frozen=True)
class SubnetInfo:
    """A subnet as the rules need it: canonical id and address range."""

    id: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


def reserved_addresses(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> set[str]:
    """Azure keeps the first four addresses and the last one of every subnet."""
    first = network.network_address
    return {str(first + i) for i in range(4)} | {str(network.broadcast_address)}


def check_if_match(if_match: str | None, current_etag: str | None, resource_id: str) -> None:
    """Raise 412 PreconditionFailed when ``If-Match`` names another etag (``*`` = any)."""
    if if_match is None:
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    if "*" in wanted and current_etag is not None:
        return
    if current_etag is not None and current_etag in wanted:
        return
    raise ArmError(
        412,
        "PreconditionFailed",
        f"Precondition failed for resource {resource_id}: the If-Match etag {if_match} "
        f"does not match the current etag {current_etag or '(resource does not exist)'}.",
    )


def normalize_ip_configurations(
    nic_id: str,
    configs: Any,
    subnets: Mapping[str, SubnetInfo],
    holders: Mapping[str, str],
    allocate: Callable[[SubnetInfo, set[str]], str | None],
) -> list[dict[str, Any]]:
    """Check the ``ipConfigurations`` of a NIC PUT and return them normalized.

    ``subnets`` maps lower-cased subnet ids to subnets; ``holders`` maps private IPs
    held by *other* NICs to the holding ip-configuration id; ``allocate`` picks a free
    address for a Dynamic config without one. Raises ArmError (400) on the first
    violation. The result keeps writeable properties only, with ``subnet.id`` in
    canonical case, ``primary`` set and ``privateIPAddressVersion`` filled in.
    """
    if not isinstance(configs, list) or not configs:
        raise ArmError(
            400,
            "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            f"Network interface {nic_id} must have one or more IP configurations.",
        )
    names: set[str] = set()
    for config in configs:
        name = config.get("name") if isinstance(config, dict) else None
        if not isinstance(name, str) or not name:
            raise ArmError(
                400,
                "InvalidRequestFormat",
                f"Cannot parse the request: an IP configuration of {nic_id} has no name.",
            )
        if name.lower() in names:
            raise ArmError(
                400,
                "DuplicateResourceName",
                f"Resource {nic_id} has two child resources with the same name ({name}).",
            )
        names.add(name.lower())

    normalized = [_writeable(config) for config in configs]
    _check_primary(nic_id, normalized)

    taken: dict[str, str] = {}  # address -> id of the ip-configuration of this NIC using it
    for config in normalized:
        config_id = f"{nic_id}/ipConfigurations/{config['name']}"
        props = config["properties"]
        subnet = _subnet_of(nic_id, props, subnets)
        props["subnet"] = {"id": subnet.id}
        props.setdefault("privateIPAddressVersion", "IPv4")
        method = props.get("privateIPAllocationMethod") or (
            "Static" if props.get("privateIPAddress") else "Dynamic"
        )
        props["privateIPAllocationMethod"] = method
        address = props.get("privateIPAddress")
        if not address:
            if method == "Static":
                raise ArmError(
                    400,
                    "PrivateIPAddressIsNullOrEmpty",
                    f"IP configuration {config_id} has allocation method Static "
                    "but no private IP address.",
                )
            address = allocate(subnet, set(taken) | set(holders))
            if address is None:
                raise ArmError(
                    400,
                    "SubnetIsFull",
                    f"Subnet {subnet.id} with address prefix {subnet.network} "
                    "does not have enough capacity for 1 IP addresses.",
                )
            props["privateIPAddress"] = address
        _check_address(config_id, str(address), subnet, holders, taken)
        taken[str(address)] = config_id
    return normalized


def _writeable(config: dict[str, Any]) -> dict[str, Any]:
    props = config.get("properties")
    props = dict(props) if isinstance(props, dict) else {}
    for key in _IPCONFIG_READ_ONLY_PROPERTIES:
        props.pop(key, None)
    return {"name": config["name"], "properties": props}


def _check_primary(nic_id: str, configs: list[dict[str, Any]]) -> None:
    if len(configs) == 1 and configs[0]["properties"].get("primary") is None:
        # With a single ip-configuration ARM makes it the primary one.
        configs[0]["properties"]["primary"] = True
    primaries = [c for c in configs if c["properties"].get("primary") is True]
    if not primaries:
        raise ArmError(
            400,
            "NicHasNoPrimaryIpConfiguration",
            f"Network interface {nic_id} has no primary IP configuration; "
            "exactly one IP configuration must be primary.",
        )
    if len(primaries) > 1:
        raise ArmError(
            400,
            "NicHasMultiplePrimaryIpConfigurations",
            f"Network interface {nic_id} has {len(primaries)} primary IP configurations; "
            "exactly one IP configuration must be primary.",
        )
    for config in configs:
        config["properties"]["primary"] = config["properties"].get("primary") is True


def _subnet_of(nic_id: str, props: dict[str, Any], subnets: Mapping[str, SubnetInfo]) -> SubnetInfo:
    ref = props.get("subnet")
    subnet_id = ref.get("id") if isinstance(ref, dict) else None
    if not isinstance(subnet_id, str) or not subnet_id:
        raise ArmError(
            400,
            "SubnetIsRequiredForIpConfiguration",
            f"Subnet is required for the IP configurations of network interface {nic_id}.",
        )
    subnet = subnets.get(subnet_id.lower().rstrip("/"))
    if subnet is None:
        raise ArmError(
            400,
            "InvalidResourceReference",
            f"Resource {subnet_id} referenced by resource {nic_id} was not found. Please make "
            "sure that the referenced resource exists, and that both resources are in the "
            "same region.",
        )
    return subnet


def _check_address(
    config_id: str,
    address: str,
    subnet: SubnetInfo,
    holders: Mapping[str, str],
    taken: Mapping[str, str],
) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ArmError(
            400,
            "PrivateIPAddressInvalid",
            f"Private IP address {address} of IP configuration {config_id} is not valid.",
        ) from None
    if ip not in subnet.network:
        raise ArmError(
            400,
            "PrivateIPAddressNotInSubnet",
            f"IP configuration {config_id} is referencing private IP address {address} which "
            f"does not belong to subnet {subnet.id} with address prefix {subnet.network}.",
        )
    if str(ip) in reserved_addresses(subnet.network):
        raise ArmError(
            400,
            "PrivateIPAddressInReservedRange",
            f"Private static IP address {address} falls within reserved IP range of subnet "
            f"prefix {subnet.network}.",
        )
    holder = holders.get(str(ip)) or taken.get(str(ip))
    if holder is not None:
        # Code and wording as recorded (issue threads quoting ARM, 2018 and 2024); the
        # holder is the other ip-configuration's id, as in the 2024 one.
        raise ArmError(
            400,
            "PrivateIPAddressIsAllocated",
            f"IP configuration {config_id} is using the private IP address {address} which is "
            f"already allocated to resource {holder}.",
        )
