"""VMs and NICs in resource groups of their own (``scale-rg:N``), the VNet in the topology's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient

from emulator.azure.control import AzureControl, ReadyInfo
from emulator.azure.launcher import EmulatorProcess
from emulator.azure.topology import load_topology

from .conftest import _IDENTITY_VARS, ARM_SCOPE
from .helpers import app_token, arm_get, put_first_response, with_secondary

NET_GROUP = "ScaleGroup1"
GROUP1, GROUP2 = "ScaleCluster0001", "ScaleCluster0002"


def test_scale_rg_puts_each_cluster_in_a_group_of_its_own() -> None:
    topology = load_topology("scale-rg:3")

    assert topology.resource_groups == (NET_GROUP, GROUP1, GROUP2, "ScaleCluster0003")
    assert [topology.group_of(vm) for vm in topology.vms[:4]] == [GROUP1, GROUP1, GROUP2, GROUP2]
    assert {topology.group_of(vm) for vm in load_topology("scale:3").vms} == {NET_GROUP}


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(
        tmp_path_factory.mktemp("grouped"), ["--nic-update-seconds", "0.2"], topology="scale-rg:2"
    )
    process.start()
    yield process
    assert process.stop() == 0


@pytest.fixture
def ready(grouped: EmulatorProcess) -> ReadyInfo:
    return grouped.ready


@pytest.fixture
def control(grouped: EmulatorProcess) -> Iterator[AzureControl]:
    control = grouped.control()
    control.reset()
    yield control
    control.close()


@pytest.fixture
def client(ready: ReadyInfo, monkeypatch: pytest.MonkeyPatch) -> NetworkManagementClient:
    for name in _IDENTITY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in ready.app_identity_env().items():
        monkeypatch.setenv(name, value)
    return NetworkManagementClient(
        ManagedIdentityCredential(),
        ready.subscription_id,
        base_url=ready.arm,
        credential_scopes=[ARM_SCOPE],
        connection_verify=ready.ca_file,
    )


def test_a_group_lists_only_its_own_nics(client: NetworkManagementClient) -> None:
    assert [n.name for n in client.network_interfaces.list(GROUP1)] == [
        "c0001n1-nic",
        "c0001n2-nic",
    ]
    assert [n.name for n in client.network_interfaces.list(NET_GROUP)] == []
    assert len(list(client.network_interfaces.list_all())) == 4


def test_ids_name_the_nics_and_vms_group_and_the_vnets(client: NetworkManagementClient) -> None:
    nic = client.network_interfaces.get(GROUP2, "c0002n1-nic")

    assert f"/resourceGroups/{GROUP2}/providers/Microsoft.Network/" in nic.id
    assert nic.virtual_machine.id.endswith(
        f"/resourceGroups/{GROUP2.upper()}/providers/Microsoft.Compute/virtualMachines/c0002n1"
    )
    subnet = nic.ip_configurations[0].subnet.id
    assert f"/resourceGroups/{NET_GROUP}/providers/Microsoft.Network/virtualNetworks/" in subnet


def test_a_nic_is_not_found_in_another_group(client: NetworkManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError) as error:
        client.network_interfaces.get(GROUP2, "c0001n1-nic")
    assert f"under resource group '{GROUP2}'" in str(error.value)


def test_a_nic_is_written_in_its_group(
    client: NetworkManagementClient, control: AzureControl
) -> None:
    nic = client.network_interfaces.get(GROUP1, "c0001n2-nic")
    body = with_secondary(nic.as_dict(), ip="10.8.128.10")

    response = put_first_response(client, GROUP1, "c0001n2-nic", body)

    assert response.http_response.status_code == 200
    assert control.ip_holder("10.8.128.10").nic == "c0001n2-nic"


def test_vms_groups_and_instance_metadata_follow_the_vm(
    ready: ReadyInfo, control: AzureControl
) -> None:
    token = app_token(control)
    sub = f"/subscriptions/{ready.subscription_id}"
    vm = arm_get(
        ready,
        f"{sub}/resourceGroups/{GROUP1}/providers/Microsoft.Compute/virtualMachines/c0001n2",
        token,
        **{"api-version": "2024-07-01"},
    )
    elsewhere = arm_get(
        ready,
        f"{sub}/resourceGroups/{NET_GROUP}/providers/Microsoft.Compute/virtualMachines/c0001n2",
        token,
        **{"api-version": "2024-07-01"},
    )
    group = arm_get(ready, f"{sub}/resourceGroups/{GROUP2}", token, **{"api-version": "2021-04-01"})
    unknown = arm_get(ready, f"{sub}/resourceGroups/Nope", token, **{"api-version": "2021-04-01"})

    assert vm.status_code == 200
    assert vm.json()["properties"]["networkProfile"]["networkInterfaces"][0]["id"].endswith(
        f"/resourceGroups/{GROUP1}/providers/Microsoft.Network/networkInterfaces/c0001n2-nic"
    )
    assert elsewhere.status_code == 404
    assert (group.status_code, group.json()["name"]) == (200, GROUP2)
    assert unknown.status_code == 404
    compute = requests.get(
        f"{ready.imds['c0002n1']}/metadata/instance/compute",
        params={"api-version": "2021-02-01"},
        headers={"Metadata": "true"},
        timeout=5,
    ).json()
    assert compute["resourceGroupName"] == GROUP2
    assert f"/resourceGroups/{GROUP2}/providers/Microsoft.Compute/" in compute["resourceId"]


def test_the_topology_file_format_keeps_the_groups() -> None:
    topology = load_topology("scale-rg:1")
    raw = topology.to_dict()

    assert raw["vms"][0]["resource_group"] == GROUP1
    assert load_topology("seed").to_dict()["vms"][0]["resource_group"] is None
