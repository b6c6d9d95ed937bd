"""NIC reads and writes through the real azure-mgmt-network SDK."""

from __future__ import annotations

import copy
import itertools
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.network import NetworkManagementClient

from emulator.azure.control import AzureControl, ReadyInfo

from .conftest import NIC1, NIC2, NIC_UPDATE_SECONDS, RESOURCE_GROUP, SECONDARY_IP
from .helpers import app_token, arm_get, nic_path, with_secondary


def test_get_nic_has_the_real_rest_shape(
    network_client: NetworkManagementClient, azure_ready: ReadyInfo
) -> None:
    nic = network_client.network_interfaces.get(RESOURCE_GROUP, NIC1)

    assert nic.etag.startswith('W/"')
    assert nic.provisioning_state == "Succeeded"
    assert nic.enable_ip_forwarding is True
    assert nic.dns_settings.dns_servers == ["10.5.0.4", "168.63.129.16"]
    assert nic.network_security_group.id.endswith("/networkSecurityGroups/server01-nsg")
    assert nic.virtual_machine.id.lower().endswith("/virtualmachines/server01")
    assert nic.mac_address
    (config,) = nic.ip_configurations
    assert config.id == f"{nic.id}/ipConfigurations/ipconfig1"
    assert config.etag == nic.etag
    assert config.private_ip_address == "10.5.0.101"
    assert config.primary is True
    assert config.public_ip_address.id.endswith("/publicIPAddresses/server01-ip")


def test_update_through_lro_adds_ip_and_keeps_every_other_setting(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    before = azure_control.nic(NIC1)
    body = with_secondary(before)

    result = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, body
    ).result()

    assert result.provisioning_state == "Succeeded"
    assert [c.private_ip_address for c in result.ip_configurations] == ["10.5.0.101", SECONDARY_IP]
    after = azure_control.nic(NIC1)
    assert after["etag"] != before["etag"]
    for key in (
        "enableIPForwarding",
        "dnsSettings",
        "networkSecurityGroup",
        "macAddress",
        "virtualMachine",
    ):
        assert after["properties"][key] == before["properties"][key]
    assert after["tags"] == before["tags"]
    assert (
        after["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]
        == (before["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"])
    )
    assert azure_control.ip_holder(SECONDARY_IP).vm == "server01"


def test_put_replaces_the_whole_resource_so_omitted_settings_are_dropped(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    body = with_secondary(azure_control.nic(NIC1))
    del body["properties"]["enableIPForwarding"]
    del body["tags"]

    network_client.network_interfaces.begin_create_or_update(RESOURCE_GROUP, NIC1, body).result()

    after = azure_control.nic(NIC1)
    assert after["properties"]["enableIPForwarding"] is False
    assert "tags" not in after


def test_sdk_polls_at_the_pace_of_retry_after(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.update_settings(retry_after=0.4, nic_update_seconds=1.0)
    since = azure_control.last_seq()

    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    ).result()

    polls = [r for r in azure_control.requests(since, method="GET") if "/operations/" in r.path]
    put = azure_control.requests(since, method="PUT")[0]
    # azure-core polls once right after the initial response, then sleeps Retry-After
    # between polls (overriding its 30 s polling_interval).
    assert polls[0].time - put.time < 0.2
    assert 3 <= len(polls) <= 5
    gaps = [b.time - a.time for a, b in itertools.pairwise(polls)]
    assert all(0.35 <= gap < 0.8 for gap in gaps), gaps


def test_get_during_update_shows_new_config_as_updating(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.update_settings(nic_update_seconds=30)
    poller = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1)), polling=False
    )
    poller.result()

    nic = network_client.network_interfaces.get(RESOURCE_GROUP, NIC1)

    assert nic.provisioning_state == "Updating"
    assert [c.name for c in nic.ip_configurations] == ["ipconfig1", "ipconfig2"]
    assert {c.provisioning_state for c in nic.ip_configurations} == {"Updating"}


def test_write_while_updating_gets_409_which_the_sdk_does_not_retry(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.update_settings(nic_update_seconds=30)
    body = with_secondary(azure_control.nic(NIC1))
    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, body, polling=False
    )
    since = azure_control.last_seq()

    with pytest.raises(ResourceExistsError) as caught:
        network_client.network_interfaces.begin_create_or_update(RESOURCE_GROUP, NIC1, body)

    assert caught.value.status_code == 409
    assert caught.value.error.code == "AnotherOperationInProgress"
    assert len(azure_control.requests(since, method="PUT")) == 1


def test_stale_etag_gets_412(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    stale = azure_control.nic(NIC1)
    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(stale)
    ).result()

    with pytest.raises(HttpResponseError) as caught:
        network_client.network_interfaces.begin_create_or_update(
            RESOURCE_GROUP, NIC1, stale, headers={"If-Match": stale["etag"]}
        )

    assert caught.value.status_code == 412
    assert caught.value.error.code == "PreconditionFailed"


def test_current_etag_and_star_are_accepted(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    nic = azure_control.nic(NIC1)
    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(nic), headers={"If-Match": nic["etag"]}
    ).result()
    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, nic, headers={"If-Match": "*"}
    ).result()

    assert len(azure_control.nic(NIC1)["properties"]["ipConfigurations"]) == 1


def test_etag_changes_when_the_update_finishes(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    poller = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1)), polling=False
    )
    updating_etag = poller.result().etag

    assert azure_control.wait_until_settled(NIC1)["etag"] != updating_etag


def test_ip_held_by_another_nic_is_private_ip_address_in_use(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    ).result()

    with pytest.raises(HttpResponseError) as caught:
        network_client.network_interfaces.begin_create_or_update(
            RESOURCE_GROUP, NIC2, with_secondary(azure_control.nic(NIC2))
        )

    assert caught.value.status_code == 400
    assert caught.value.error.code == "PrivateIPAddressInUse"
    assert NIC1 in caught.value.error.message


def _no_primary(body: dict) -> dict:
    for config in body["properties"]["ipConfigurations"]:
        config["properties"]["primary"] = False
    return body


def _two_primaries(body: dict) -> dict:
    for config in body["properties"]["ipConfigurations"]:
        config["properties"]["primary"] = True
    return body


def _unknown_subnet(body: dict) -> dict:
    config = body["properties"]["ipConfigurations"][1]["properties"]
    config["subnet"]["id"] = config["subnet"]["id"].replace("Vnet1-1", "nope")
    return body


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda b: with_secondary(b, ip="10.5.1.110"), "PrivateIPAddressNotInSubnet"),
        (lambda b: with_secondary(b, ip="10.5.0.2"), "PrivateIPAddressInReservedRange"),
        (lambda b: with_secondary(b, ip="10.5.0.101"), "PrivateIPAddressInUse"),
        (lambda b: with_secondary(b, name="IPCONFIG1"), "DuplicateResourceName"),
        (lambda b: _no_primary(with_secondary(b)), "NicHasNoPrimaryIpConfiguration"),
        (lambda b: _two_primaries(with_secondary(b)), "NicHasMultiplePrimaryIpConfigurations"),
        (lambda b: _unknown_subnet(with_secondary(b)), "InvalidResourceReference"),
    ],
)
def test_invalid_nic_is_refused_with_the_network_rp_code(
    network_client: NetworkManagementClient, azure_control: AzureControl, change, code: str
) -> None:
    before = azure_control.nic(NIC1)

    with pytest.raises(HttpResponseError) as caught:
        network_client.network_interfaces.begin_create_or_update(
            RESOURCE_GROUP, NIC1, change(copy.deepcopy(before))
        )

    assert caught.value.status_code == 400
    assert caught.value.error.code == code
    assert azure_control.nic(NIC1)["etag"] == before["etag"]


def test_failed_operation_surfaces_its_error_code(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.fail_next_lros(1, code="InternalServerError", message="boom")
    poller = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    )

    with pytest.raises(HttpResponseError) as caught:
        poller.result()

    assert caught.value.error.code == "InternalServerError"
    assert azure_control.nic(NIC1)["properties"]["provisioningState"] == "Failed"


def test_new_nic_is_created_with_201_and_dynamic_address(
    network_client: NetworkManagementClient, azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    subnet = azure_control.nic(NIC1)["properties"]["ipConfigurations"][0]["properties"]["subnet"]
    body = {
        "location": "westcentralus",
        "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": subnet}}]
        },
    }
    since = azure_control.last_seq()

    nic = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, "extra-nic", body
    ).result()

    assert azure_control.requests(since, method="PUT")[0].status == 201
    assert nic.ip_configurations[0].private_ip_address == "10.5.0.4"
    assert nic.ip_configurations[0].private_ip_allocation_method == "Dynamic"
    assert nic.ip_configurations[0].primary is True


def test_lists_follow_next_link(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.update_settings(page_size=1)
    since = azure_control.last_seq()

    names = [nic.name for nic in network_client.network_interfaces.list(RESOURCE_GROUP)]
    all_names = [nic.name for nic in network_client.network_interfaces.list_all()]

    assert names == all_names == [NIC1, NIC2]
    assert len(azure_control.requests(since, method="GET")) == 4


def test_paths_match_case_insensitively(
    azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    token = app_token(azure_control)
    path = nic_path(azure_ready, NIC1).lower().replace("server01535", "SERVER01535")

    response = arm_get(azure_ready, path, token, **{"api-version": "2026-03-01"})

    assert response.status_code == 200
    assert response.json()["name"] == NIC1


def test_missing_api_version_is_400(azure_control: AzureControl, azure_ready: ReadyInfo) -> None:
    response = arm_get(azure_ready, nic_path(azure_ready, NIC1), app_token(azure_control))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"
    assert response.headers["x-ms-request-id"]
    assert response.headers["x-ms-correlation-request-id"]


def test_unknown_nic_and_group_are_arm_404s(
    azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    token = app_token(azure_control)
    missing = arm_get(azure_ready, nic_path(azure_ready, "nope"), token, **{"api-version": "1"})
    bad_group = arm_get(
        azure_ready,
        nic_path(azure_ready, NIC1).replace("TestGroup1", "Other"),
        token,
        **{"api-version": "1"},
    )

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    assert bad_group.json()["error"]["code"] == "ResourceGroupNotFound"


def test_operation_status_goes_in_progress_then_succeeded(
    network_client: NetworkManagementClient, azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    token = app_token(azure_control)
    azure_control.update_settings(nic_update_seconds=0.5)
    raw = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1)), polling=False
    )
    raw.result()
    (operation,) = azure_control.operations()
    path = (
        f"/subscriptions/{azure_ready.subscription_id}/providers/Microsoft.Network/locations/"
        f"westcentralus/operations/{operation['id']}"
    )

    first = arm_get(azure_ready, path, token, **{"api-version": "2026-03-01"})
    time.sleep(NIC_UPDATE_SECONDS + 0.3)  # the operation's own duration, not a poll
    second = arm_get(azure_ready, path, token, **{"api-version": "2026-03-01"})

    assert first.json() == {"status": "InProgress"}
    assert "retry-after-ms" in first.headers  # fractional Retry-After configured
    assert second.json() == {"status": "Succeeded"}
