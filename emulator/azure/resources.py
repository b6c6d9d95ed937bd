"""Resource ids and the REST shapes of the resources the emulator serves.

Shapes follow azure-rest-api-specs (Microsoft.Network networkInterface.json /
virtualNetwork.json, Microsoft.Compute virtualMachine.json) for the fields a
client reads; rarely used read-only fields are left out.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from typing import Any

from .topology import NicSpec, Topology, VmSpec

__all__ = [
    "ResourceIds",
    "initial_nic",
    "new_etag",
    "resource_group_json",
    "subnet_json",
    "subscription_json",
    "vm_json",
    "vnet_json",
]

NIC_TYPE = "Microsoft.Network/networkInterfaces"
IPCONFIG_TYPE = "Microsoft.Network/networkInterfaces/ipConfigurations"


def new_etag() -> str:
    """A weak etag in the network RP's format: ``W/"<guid>"``."""
    return f'W/"{uuid.uuid4()}"'


class ResourceIds:
    """Canonical ids for one subscription: its resource groups and what is in them.

    VNets are in the topology's resource group; a VM and its NICs in the VM's own
    (``VmSpec.resource_group``), which is the topology's unless it names another.
    """

    def __init__(self, topology: Topology) -> None:
        self.subscription = f"/subscriptions/{topology.subscription_id}"
        self.resource_group = self.group(topology.resource_group)
        self.network = f"{self.resource_group}/providers/Microsoft.Network"
        self.compute = f"{self.resource_group}/providers/Microsoft.Compute"
        self._rg_name = topology.resource_group
        self._subscription_id = topology.subscription_id
        self._vm_group = {vm.name.lower(): topology.group_of(vm) for vm in topology.vms}
        self._nic_group = {
            nic.name.lower(): topology.group_of(vm) for vm in topology.vms for nic in vm.nics
        }

    def group(self, name: str) -> str:
        """Id of resource group ``name``."""
        return f"{self.subscription}/resourceGroups/{name}"

    def group_of_vm(self, name: str) -> str:
        """The resource group of VM ``name`` (the topology's for a VM it does not have)."""
        return self._vm_group.get(name.lower(), self._rg_name)

    def group_of_nic(self, name: str) -> str:
        """The resource group of topology NIC ``name`` (the topology's for others)."""
        return self._nic_group.get(name.lower(), self._rg_name)

    def nic(self, name: str, group: str | None = None) -> str:
        """Id of NIC ``name`` (in ``group``, else in its topology group)."""
        group = group or self.group_of_nic(name)
        return f"{self.group(group)}/providers/Microsoft.Network/networkInterfaces/{name}"

    def vnet(self, name: str) -> str:
        """Id of VNet ``name``."""
        return f"{self.network}/virtualNetworks/{name}"

    def subnet(self, vnet: str, name: str) -> str:
        """Id of subnet ``name`` of VNet ``vnet``."""
        return f"{self.vnet(vnet)}/subnets/{name}"

    def vm(self, name: str) -> str:
        """Id of VM ``name``."""
        group = self.group(self.group_of_vm(name))
        return f"{group}/providers/Microsoft.Compute/virtualMachines/{name}"

    def vm_reference(self, name: str) -> str:
        """The VM id as a NIC's ``virtualMachine.id`` shows it: ARM upper-cases the group."""
        return (
            f"/subscriptions/{self._subscription_id}/resourceGroups/"
            f"{self.group_of_vm(name).upper()}/providers/Microsoft.Compute/virtualMachines/{name}"
        )

    def vm_mirid(self, name: str) -> str:
        """The VM id as tokens carry it in ``xms_mirid`` (lower-case ``resourcegroups``)."""
        return (
            f"/subscriptions/{self._subscription_id}/resourcegroups/{self.group_of_vm(name)}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )

    def site_mirid(self, name: str) -> str:
        """The Function app's id as its tokens carry it in ``xms_mirid``."""
        return (
            f"/subscriptions/{self._subscription_id}/resourcegroups/{self._rg_name}"
            f"/providers/Microsoft.Web/sites/{name}"
        )

    def operation(self, location: str, operation_id: str) -> str:
        """Path of a network async operation (polled via ``Azure-AsyncOperation``)."""
        provider = f"{self.subscription}/providers/Microsoft.Network"
        return f"{provider}/locations/{location}/operations/{operation_id}"


def initial_nic(
    topology: Topology, ids: ResourceIds, vm: VmSpec, nic: NicSpec, primary: bool
) -> dict[str, Any]:
    """A NIC as ARM would return it right after the topology was deployed."""
    etag = new_etag()
    nic_id = ids.nic(nic.name)
    configs = []
    for config in nic.ip_configurations:
        props: dict[str, Any] = {
            "provisioningState": "Succeeded",
            "privateIPAddress": config.private_ip,
            "privateIPAllocationMethod": config.allocation,
            "subnet": {"id": ids.subnet(config.vnet, config.subnet)},
            "primary": config.primary or len(nic.ip_configurations) == 1,
            "privateIPAddressVersion": "IPv4",
        }
        if config.public_ip_id:
            props["publicIPAddress"] = {"id": config.public_ip_id}
        configs.append(
            {
                "name": config.name,
                "id": f"{nic_id}/ipConfigurations/{config.name}",
                "etag": etag,
                "type": IPCONFIG_TYPE,
                "properties": props,
            }
        )
    properties: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "resourceGuid": str(uuid.uuid5(uuid.NAMESPACE_URL, nic_id)),
        "ipConfigurations": configs,
        "dnsSettings": {
            "dnsServers": list(nic.dns_servers),
            "appliedDnsServers": list(nic.dns_servers),
            "internalDomainNameSuffix": f"{topology.tenant_id[:8]}.cx.internal.cloudapp.net",
        },
        "macAddress": nic.mac,
        "vnetEncryptionSupported": False,
        "enableIPForwarding": nic.enable_ip_forwarding,
        "enableAcceleratedNetworking": nic.enable_accelerated_networking,
        "disableTcpStateTracking": False,
        "primary": primary,
        "virtualMachine": {"id": ids.vm_reference(vm.name)},
        "hostedWorkloads": [],
        "tapConfigurations": [],
        "nicType": "Standard",
        "auxiliaryMode": "None",
        "auxiliarySku": "None",
    }
    if nic.nsg_id:
        properties["networkSecurityGroup"] = {"id": nic.nsg_id}
    resource: dict[str, Any] = {
        "name": nic.name,
        "id": nic_id,
        "etag": etag,
        "type": NIC_TYPE,
        "location": topology.location,
        "kind": "Regular",
        "properties": properties,
    }
    if nic.tags:
        resource["tags"] = dict(nic.tags)
    return resource


def subnet_json(
    topology: Topology,
    ids: ResourceIds,
    vnet: str,
    name: str,
    prefix: str,
    ipconfig_ids: Iterable[str],
    etag: str,
) -> dict[str, Any]:
    """A subnet, listing the ip-configurations that use it (as ARM does)."""
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "addressPrefix": prefix,
        "delegations": [],
        "privateEndpointNetworkPolicies": "Disabled",
        "privateLinkServiceNetworkPolicies": "Enabled",
    }
    configs = [{"id": config_id} for config_id in ipconfig_ids]
    if configs:
        props["ipConfigurations"] = configs
    return {
        "name": name,
        "id": ids.subnet(vnet, name),
        "etag": etag,
        "type": "Microsoft.Network/virtualNetworks/subnets",
        "properties": props,
    }


def vnet_json(
    topology: Topology, ids: ResourceIds, name: str, subnets: list[dict[str, Any]], etag: str
) -> dict[str, Any]:
    """A virtual network with its subnets."""
    vnet = next(v for v in topology.vnets if v.name.lower() == name.lower())
    return {
        "name": vnet.name,
        "id": ids.vnet(vnet.name),
        "etag": etag,
        "type": "Microsoft.Network/virtualNetworks",
        "location": topology.location,
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": str(uuid.uuid5(uuid.NAMESPACE_URL, ids.vnet(vnet.name))),
            "addressSpace": {"addressPrefixes": list(vnet.address_prefixes)},
            "subnets": subnets,
            "virtualNetworkPeerings": [],
            "enableDdosProtection": False,
            "privateEndpointVNetPolicies": "Disabled",
        },
    }


def vm_json(
    topology: Topology, ids: ResourceIds, vm: VmSpec, identity_enabled: bool
) -> dict[str, Any]:
    """A virtual machine (Microsoft.Compute) with its identity and NIC references."""
    resource: dict[str, Any] = {
        "name": vm.name,
        "id": ids.vm(vm.name),
        "type": "Microsoft.Compute/virtualMachines",
        # Compute's etag (in the VM's REST definition since 2023): a quoted counter, and
        # VMs never change here.
        "etag": '"1"',
        "location": topology.location,
        "properties": {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": {
                "imageReference": {
                    "publisher": "RedHat",
                    "offer": "RHEL",
                    "sku": "8-lvm-gen2",
                    "version": "latest",
                },
                "osDisk": {
                    "osType": "Linux",
                    "name": f"{vm.name}_OsDisk_1",
                    "createOption": "FromImage",
                },
                "dataDisks": [],
            },
            "osProfile": {
                "computerName": vm.name,
                "adminUsername": "azureuser",
                "linuxConfiguration": {"disablePasswordAuthentication": True},
            },
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": ids.nic(nic.name, topology.group_of(vm)),
                        "properties": {"primary": index == 0},
                    }
                    for index, nic in enumerate(vm.nics)
                ]
            },
            "provisioningState": "Succeeded",
        },
    }
    if identity_enabled:
        resource["identity"] = {
            "type": "SystemAssigned",
            "principalId": vm.principal_id,
            "tenantId": topology.tenant_id,
        }
    return resource


def subscription_json(topology: Topology) -> dict[str, Any]:
    """The subscription as ``GET /subscriptions/{id}`` returns it."""
    return {
        "id": f"/subscriptions/{topology.subscription_id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": topology.subscription_id,
        "tenantId": topology.tenant_id,
        "displayName": topology.subscription_name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def resource_group_json(topology: Topology, ids: ResourceIds, name: str) -> dict[str, Any]:
    """Resource group ``name`` (one of ``topology.resource_groups``)."""
    return {
        "id": ids.group(name),
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": topology.location,
        "properties": {"provisioningState": "Succeeded"},
    }


def subnet_network(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The address range of a subnet prefix."""
    return ipaddress.ip_network(prefix, strict=False)
