"""What exists in the fake Azure: tenant, subscription, VNets, VMs with NICs, identities.

A topology is plain JSON (format in docs/local-azure.md). ``seed`` is the vendor
article's two-node cluster; ``scale:N`` is N two-node clusters for benchmarks, all in
one resource group, and ``scale-rg:N`` the same with each cluster's VMs and NICs in a
resource group of their own.
Identifiers that the file leaves out are derived from names with uuid5, so the
same topology always yields the same GUIDs.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AppIdentitySpec",
    "ClusterSpec",
    "IpConfigSpec",
    "NicSpec",
    "SecondaryIpSpec",
    "SubnetSpec",
    "Topology",
    "VmSpec",
    "VnetSpec",
    "load_topology",
    "scale_topology_dict",
    "seed_topology_dict",
]

_NAMESPACE = uuid.UUID("2f1b6c1e-6f0a-4c52-9a55-3b7de0c1a001")


def _guid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class SubnetSpec:
    """A subnet of a VNet."""

    name: str
    prefix: str


@dataclass(frozen=True)
class VnetSpec:
    """A virtual network and its subnets."""

    name: str
    address_prefixes: tuple[str, ...]
    subnets: tuple[SubnetSpec, ...]


@dataclass(frozen=True)
class IpConfigSpec:
    """One ip-configuration of a NIC at start-up."""

    name: str
    private_ip: str
    vnet: str
    subnet: str
    primary: bool = False
    allocation: str = "Static"
    public_ip_id: str | None = None


@dataclass(frozen=True)
class NicSpec:
    """A NIC at start-up, including the settings a mover must never drop."""

    name: str
    ip_configurations: tuple[IpConfigSpec, ...]
    mac: str
    enable_ip_forwarding: bool = False
    enable_accelerated_networking: bool = False
    dns_servers: tuple[str, ...] = ()
    nsg_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VmSpec:
    """A VM with a system-assigned identity and its NICs (the first one is primary)."""

    name: str
    principal_id: str
    vm_id: str
    nics: tuple[NicSpec, ...]
    size: str = "Standard_B2s"
    identity_enabled: bool = True
    # The resource group of the VM and its NICs; None: the topology's.
    resource_group: str | None = None


@dataclass(frozen=True)
class AppIdentitySpec:
    """The Function app's own managed identity (App Service style endpoint)."""

    name: str
    principal_id: str
    client_id: str


@dataclass(frozen=True)
class SecondaryIpSpec:
    """A secondary IP that a cluster moves between its members."""

    ip: str
    ipconfig: str
    vnet: str
    subnet: str


@dataclass(frozen=True)
class ClusterSpec:
    """Informational: which VMs form a cluster and which IPs it moves."""

    name: str
    members: tuple[str, ...]
    secondary_ips: tuple[SecondaryIpSpec, ...]


@dataclass(frozen=True)
class Topology:
    """Everything the emulator serves; ARM-mutable state (NICs) starts from here."""

    tenant_id: str
    subscription_id: str
    subscription_name: str
    resource_group: str
    location: str
    vnets: tuple[VnetSpec, ...]
    vms: tuple[VmSpec, ...]
    app_identity: AppIdentitySpec
    clusters: tuple[ClusterSpec, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, in the topology file format."""
        return _tuples_to_lists(asdict(self))

    def vm(self, name: str) -> VmSpec | None:
        """The VM called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((vm for vm in self.vms if vm.name.lower() == wanted), None)

    def group_of(self, vm: VmSpec) -> str:
        """The resource group of ``vm`` and its NICs."""
        return vm.resource_group or self.resource_group

    @property
    def resource_groups(self) -> tuple[str, ...]:
        """Every resource group: the topology's (VNets, and VMs that name none) first."""
        groups = [self.resource_group]
        seen = {self.resource_group.lower()}
        for vm in self.vms:
            group = self.group_of(vm)
            if group.lower() not in seen:
                seen.add(group.lower())
                groups.append(group)
        return tuple(groups)


def _tuples_to_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples_to_lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tuples_to_lists(v) for v in value]
    return value


def _mac(*parts: str) -> str:
    # Azure shows MACs as 12 upper-case hex digits with dashes; 00-0D-3A is Microsoft's OUI.
    digest = uuid.uuid5(_NAMESPACE, "mac/" + "/".join(parts)).hex[:6].upper()
    return "00-0D-3A-" + "-".join(digest[i : i + 2] for i in range(0, 6, 2))


def seed_topology_dict() -> dict[str, Any]:
    """The vendor article's setup: TestGroup1 / Vnet1 / server01 + server02, IP 10.5.0.110."""
    sub = "5a3c7e2b-8d41-4f6a-9b0e-2c1d3f4a5b6c"
    rg = "TestGroup1"
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network"
    return {
        "tenant_id": "9d2f4c1a-7b3e-4e5f-8a6b-1c2d3e4f5a6b",
        "subscription_id": sub,
        "subscription_name": "HA cluster test subscription",
        "resource_group": rg,
        "location": "westcentralus",
        "vnets": [
            {
                "name": "Vnet1",
                "address_prefixes": ["10.5.0.0/24"],
                "subnets": [{"name": "Vnet1-1", "prefix": "10.5.0.0/24"}],
            }
        ],
        "vms": [
            {
                "name": "server01",
                "nics": [
                    {
                        "name": "server01535",
                        "enable_ip_forwarding": True,
                        "dns_servers": ["10.5.0.4", "168.63.129.16"],
                        "nsg_id": f"{base}/networkSecurityGroups/server01-nsg",
                        "tags": {"role": "ha-node", "cluster": "cluster1"},
                        "ip_configurations": [
                            {
                                "name": "ipconfig1",
                                "private_ip": "10.5.0.101",
                                "vnet": "Vnet1",
                                "subnet": "Vnet1-1",
                                "primary": True,
                                "public_ip_id": f"{base}/publicIPAddresses/server01-ip",
                            }
                        ],
                    }
                ],
            },
            {
                "name": "server02",
                "nics": [
                    {
                        "name": "server02800",
                        "dns_servers": ["10.5.0.4"],
                        "nsg_id": f"{base}/networkSecurityGroups/server02-nsg",
                        "tags": {"role": "ha-node", "cluster": "cluster1"},
                        "ip_configurations": [
                            {
                                "name": "ipconfig1",
                                "private_ip": "10.5.0.102",
                                "vnet": "Vnet1",
                                "subnet": "Vnet1-1",
                                "primary": True,
                                "public_ip_id": f"{base}/publicIPAddresses/server02-ip",
                            }
                        ],
                    }
                ],
            },
        ],
        "app_identity": {"name": "ipmover-func"},
        "clusters": [
            {
                "name": "cluster1",
                "members": ["server01", "server02"],
                "secondary_ips": [
                    {
                        "ip": "10.5.0.110",
                        "ipconfig": "ipconfig2",
                        "vnet": "Vnet1",
                        "subnet": "Vnet1-1",
                    }
                ],
            }
        ],
    }


def scale_topology_dict(clusters: int, group_per_cluster: bool = False) -> dict[str, Any]:
    """``clusters`` two-node clusters in Vnet1 10.8.0.0/16 (VMs cNNNNn1/cNNNNn2).

    Node k (1, 2) of cluster i (1-based) has primary IP 10.8.0.0 + 10 + 2(i-1) + (k-1);
    the cluster's secondary IP is 10.8.128.10 + (i-1), ip-config ``ipconfig2``, on no NIC.
    Everything is in resource group ``ScaleGroup1``; with ``group_per_cluster`` the VMs
    and NICs of cluster i are in ``ScaleCluster{i:04d}`` instead (the VNet stays in
    ``ScaleGroup1``: NICs may use a subnet of another group's VNet, as in Azure).
    """
    if not 1 <= clusters <= 16000:
        raise ValueError("scale:N needs 1 <= N <= 16000")
    seed = seed_topology_dict()
    net = ipaddress.ip_network("10.8.0.0/16")
    vms: list[dict[str, Any]] = []
    cluster_list: list[dict[str, Any]] = []
    for i in range(1, clusters + 1):
        members = []
        for k in (1, 2):
            vm = f"c{i:04d}n{k}"
            members.append(vm)
            ip = net.network_address + 10 + 2 * (i - 1) + (k - 1)
            vms.append(
                {
                    "name": vm,
                    **({"resource_group": f"ScaleCluster{i:04d}"} if group_per_cluster else {}),
                    "nics": [
                        {
                            "name": f"{vm}-nic",
                            "enable_ip_forwarding": k == 1,
                            "dns_servers": ["10.8.0.4"],
                            "tags": {"cluster": f"cluster{i:04d}"},
                            "ip_configurations": [
                                {
                                    "name": "ipconfig1",
                                    "private_ip": str(ip),
                                    "vnet": "Vnet1",
                                    "subnet": "Vnet1-1",
                                    "primary": True,
                                }
                            ],
                        }
                    ],
                }
            )
        secondary = net.network_address + (128 << 8) + 10 + (i - 1)
        cluster_list.append(
            {
                "name": f"cluster{i:04d}",
                "members": members,
                "secondary_ips": [
                    {
                        "ip": str(secondary),
                        "ipconfig": "ipconfig2",
                        "vnet": "Vnet1",
                        "subnet": "Vnet1-1",
                    }
                ],
            }
        )
    return {
        **{k: seed[k] for k in ("tenant_id", "subscription_id", "subscription_name", "location")},
        "resource_group": "ScaleGroup1",
        "vnets": [
            {
                "name": "Vnet1",
                "address_prefixes": ["10.8.0.0/16"],
                "subnets": [{"name": "Vnet1-1", "prefix": "10.8.0.0/16"}],
            }
        ],
        "vms": vms,
        "app_identity": {"name": "ipmover-func"},
        "clusters": cluster_list,
    }


def load_topology(spec: str) -> Topology:
    """``seed``, ``scale:N``, ``scale-rg:N`` or the path of a topology JSON file.

    Raises ValueError for an unknown name or an invalid file.
    """
    if spec == "seed":
        raw = seed_topology_dict()
    elif spec.startswith("scale:"):
        raw = scale_topology_dict(int(spec.split(":", 1)[1]))
    elif spec.startswith("scale-rg:"):
        raw = scale_topology_dict(int(spec.split(":", 1)[1]), group_per_cluster=True)
    else:
        raw = json.loads(Path(spec).read_text(encoding="utf-8"))
    return topology_from_dict(raw)


def topology_from_dict(raw: dict[str, Any]) -> Topology:
    """Parse the topology file format, filling in derived identifiers.

    Raises ValueError (or KeyError for a missing required field) when it is invalid.
    """
    sub = raw["subscription_id"]
    vnets = tuple(
        VnetSpec(
            name=v["name"],
            address_prefixes=tuple(v["address_prefixes"]),
            subnets=tuple(SubnetSpec(s["name"], s["prefix"]) for s in v["subnets"]),
        )
        for v in raw["vnets"]
    )
    vms = tuple(_vm_from_dict(sub, vm) for vm in raw["vms"])
    app = raw.get("app_identity") or {}
    app_name = app.get("name", "ipmover-func")
    topology = Topology(
        tenant_id=raw["tenant_id"],
        subscription_id=sub,
        subscription_name=raw.get("subscription_name", "Emulated subscription"),
        resource_group=raw["resource_group"],
        location=raw.get("location", "westcentralus"),
        vnets=vnets,
        vms=vms,
        app_identity=AppIdentitySpec(
            name=app_name,
            principal_id=app.get("principal_id") or _guid(sub, "app", app_name, "principal"),
            client_id=app.get("client_id") or _guid(sub, "app", app_name, "client"),
        ),
        clusters=tuple(
            ClusterSpec(
                name=c["name"],
                members=tuple(c["members"]),
                secondary_ips=tuple(SecondaryIpSpec(**s) for s in c.get("secondary_ips", [])),
            )
            for c in raw.get("clusters", [])
        ),
    )
    _check(topology)
    return topology


def _vm_from_dict(sub: str, vm: dict[str, Any]) -> VmSpec:
    name = vm["name"]
    nics = tuple(
        NicSpec(
            name=n["name"],
            mac=n.get("mac") or _mac(sub, n["name"]),
            enable_ip_forwarding=bool(n.get("enable_ip_forwarding", False)),
            enable_accelerated_networking=bool(n.get("enable_accelerated_networking", False)),
            dns_servers=tuple(n.get("dns_servers", [])),
            nsg_id=n.get("nsg_id"),
            tags=dict(n.get("tags", {})),
            ip_configurations=tuple(IpConfigSpec(**c) for c in n["ip_configurations"]),
        )
        for n in vm["nics"]
    )
    return VmSpec(
        name=name,
        principal_id=vm.get("principal_id") or _guid(sub, "vm", name, "principal"),
        vm_id=vm.get("vm_id") or _guid(sub, "vm", name, "vmid"),
        nics=nics,
        size=vm.get("size", "Standard_B2s"),
        identity_enabled=bool(vm.get("identity_enabled", True)),
        resource_group=vm.get("resource_group") or None,
    )


def _check(topology: Topology) -> None:
    subnets = {(v.name.lower(), s.name.lower()) for v in topology.vnets for s in v.subnets}
    for vnet in topology.vnets:
        for subnet in vnet.subnets:
            ipaddress.ip_network(subnet.prefix)
    seen_nics: set[str] = set()
    for vm in topology.vms:
        if not vm.nics:
            raise ValueError(f"VM {vm.name} has no NIC")
        for nic in vm.nics:
            if nic.name.lower() in seen_nics:
                raise ValueError(f"NIC {nic.name} is defined twice")
            seen_nics.add(nic.name.lower())
            for config in nic.ip_configurations:
                if (config.vnet.lower(), config.subnet.lower()) not in subnets:
                    raise ValueError(
                        f"NIC {nic.name}: unknown subnet {config.vnet}/{config.subnet}"
                    )
                ipaddress.ip_address(config.private_ip)
