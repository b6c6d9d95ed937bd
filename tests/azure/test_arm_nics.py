"""NIC reads and writes through the real azure-mgmt-network SDK."""

from __future__ import annotations

import copy
import itertools
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.rest import HttpRequest
from azure.mgmt.network import NetworkManagementClient

from emulator.azure.control import AzureControl, ReadyInfo

from .conftest import NIC1, NIC2, RESOURCE_GROUP, SECONDARY_IP
from .helpers import app_token, arm_get, nic_path, put_first_response, with_secondary

BOTH_MODES = pytest.mark.parametrize("mode", ["async", "sync"])


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


@BOTH_MODES
def test_update_through_lro_adds_ip_and_keeps_every_other_setting(
    network_client: NetworkManagementClient, azure_control: AzureControl, mode: str
) -> None:
    azure_control.update_settings(nic_update_mode=mode)
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
    azure_control.update_settings(retry_after=0.4, nic_update_seconds=1.0, nic_update_mode="async")
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
    azure_control.update_settings(nic_update_seconds=30, nic_update_mode="async")
    poller = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1)), polling=False
    )
    poller.result()

    nic = network_client.network_interfaces.get(RESOURCE_GROUP, NIC1)

    assert nic.provisioning_state == "Updating"
    assert [c.name for c in nic.ip_configurations] == ["ipconfig1", "ipconfig2"]
    assert {c.provisioning_state for c in nic.ip_configurations} == {"Updating"}


def test_write_while_updating_is_accepted_and_its_operation_fails_another_operation(
    network_client: NetworkManagementClient, azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    azure_control.update_settings(nic_update_seconds=30, nic_update_mode="async")
    body = with_secondary(azure_control.nic(NIC1))
    first = put_first_response(network_client, RESOURCE_GROUP, NIC1, body)
    in_flight = first.http_response.headers["x-ms-request-id"]
    since = azure_control.last_seq()

    poller = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP,
        NIC1,
        with_secondary(azure_control.nic(NIC1), ip="10.5.0.111", name="ipconfig3"),
    )
    with pytest.raises(HttpResponseError) as caught:
        poller.result()

    (put,) = azure_control.requests(since, method="PUT")
    api_version = first.http_request.query["api-version"]
    assert put.status == 200
    assert caught.value.error.code == "AnotherOperationInProgress"
    assert caught.value.error.message == (
        "Another operation on this or dependent resource is in progress. To retrieve status of "
        f"the operation use uri: {azure_ready.arm}/subscriptions/{azure_ready.subscription_id}"
        "/providers/Microsoft.Network/locations/"
        f"westcentralus/operations/{in_flight}?api-version={api_version}."
    )
    nic = azure_control.nic(NIC1)  # the update in flight goes on, the second changed nothing
    assert nic["properties"]["provisioningState"] == "Updating"
    addresses = [c["properties"]["privateIPAddress"] for c in nic["properties"]["ipConfigurations"]]
    assert addresses == ["10.5.0.101", SECONDARY_IP]


def test_an_immediate_409_is_only_an_injected_fault_which_the_sdk_does_not_retry(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.fail_next(1, method="PUT", status=409, code="AnotherOperationInProgress")
    since = azure_control.last_seq()

    with pytest.raises(ResourceExistsError) as caught:
        network_client.network_interfaces.begin_create_or_update(
            RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
        )

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


def test_etag_changes_when_an_update_answered_updating_finishes(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.update_settings(nic_update_mode="async")
    poller = network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1)), polling=False
    )
    updating_etag = poller.result().etag

    assert azure_control.wait_until_settled(NIC1)["etag"] != updating_etag


def test_sync_update_answers_succeeded_in_the_put_and_keeps_that_etag(
    network_client: NetworkManagementClient, azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    azure_control.update_settings(nic_update_mode="sync", nic_update_seconds=0.5)
    before = azure_control.nic(NIC1)
    started = time.monotonic()

    response = put_first_response(network_client, RESOURCE_GROUP, NIC1, with_secondary(before))

    held = time.monotonic() - started
    headers = response.http_response.headers
    body = response.http_response.json()
    assert held >= 0.5  # the PUT is answered when the update is done
    assert response.http_response.status_code == 200
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert {
        c["properties"]["provisioningState"] for c in body["properties"]["ipConfigurations"]
    } == {"Succeeded"}
    assert "Retry-After" not in headers and "retry-after-ms" not in headers
    assert "/operations/" in headers["Azure-AsyncOperation"]
    assert body["etag"] != before["etag"]
    after = network_client.network_interfaces.get(RESOURCE_GROUP, NIC1)
    assert (after.etag, after.provisioning_state) == (body["etag"], "Succeeded")
    operation = network_client._client.send_request(
        HttpRequest("GET", headers["Azure-AsyncOperation"])
    )
    assert operation.json() == {"status": "Succeeded"}
    network = requests.get(  # what the VM sees, at once
        f"{azure_ready.imds['server01']}/metadata/instance/network",
        params={"api-version": "2021-02-01"},
        headers={"Metadata": "true"},
        timeout=10,
    ).json()
    assert [a["privateIpAddress"] for a in network["interface"][0]["ipv4"]["ipAddress"]] == [
        "10.5.0.101",
        SECONDARY_IP,
    ]


def test_mixed_mode_alternates_sync_and_async_answers(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.update_settings(nic_update_mode="mixed")
    states = []
    for body in (with_secondary(azure_control.nic(NIC1)), azure_control.nic(NIC1)):
        azure_control.wait_until_settled(NIC1)
        response = put_first_response(network_client, RESOURCE_GROUP, NIC1, body)
        states.append(response.http_response.json()["properties"]["provisioningState"])

    assert states == ["Succeeded", "Updating"]  # sync first after a reset


def test_ip_held_by_another_nic_is_private_ip_address_is_allocated_naming_it(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    ).result()

    with pytest.raises(HttpResponseError) as caught:
        network_client.network_interfaces.begin_create_or_update(
            RESOURCE_GROUP, NIC2, with_secondary(azure_control.nic(NIC2))
        )

    nic1, nic2 = azure_control.nic(NIC1)["id"], azure_control.nic(NIC2)["id"]
    assert caught.value.status_code == 400
    assert caught.value.error.code == "PrivateIPAddressIsAllocated"
    assert caught.value.error.message == (
        f"IP configuration {nic2}/ipConfigurations/ipconfig2 is using the private IP address "
        f"{SECONDARY_IP} which is already allocated to resource {nic1}/ipConfigurations/ipconfig2."
    )
    assert caught.value.response.json()["error"]["details"] == []  # the network RP's envelope


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
        (lambda b: with_secondary(b, ip="10.5.0.101"), "PrivateIPAddressIsAllocated"),
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


@BOTH_MODES
def test_failed_operation_surfaces_its_error_code_and_leaves_the_nic_failed(
    network_client: NetworkManagementClient, azure_control: AzureControl, mode: str
) -> None:
    azure_control.update_settings(nic_update_mode=mode)
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


def test_unknown_nic_and_group_are_arm_gateway_404s_without_details(
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
    assert missing.json() == {
        "error": {
            "code": "ResourceNotFound",
            "message": f"The Resource 'Microsoft.Network/networkInterfaces/nope' under resource "
            f"group '{RESOURCE_GROUP}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        }
    }
    assert bad_group.json()["error"]["code"] == "ResourceGroupNotFound"
    assert "details" not in bad_group.json()["error"]
    for response in (missing, bad_group):
        assert response.headers["x-ms-failure-cause"] == "gateway"


def test_operation_status_goes_in_progress_then_succeeded(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.update_settings(nic_update_seconds=0.5, nic_update_mode="async")
    put = put_first_response(
        network_client, RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    )
    url = put.http_response.headers["Azure-AsyncOperation"]

    first = network_client._client.send_request(HttpRequest("GET", url))
    time.sleep(0.5 + 0.3)  # the operation's own duration, not a poll
    second = network_client._client.send_request(HttpRequest("GET", url))

    assert put.http_response.json()["properties"]["provisioningState"] == "Updating"
    assert "retry-after-ms" in put.http_response.headers  # fractional Retry-After configured
    assert first.json() == {"status": "InProgress"}
    assert "retry-after-ms" in first.headers
    assert second.json() == {"status": "Succeeded"}


def test_operation_id_is_the_puts_request_id_and_its_url_is_signed(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    put = put_first_response(
        network_client, RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    )
    headers = put.http_response.headers
    url = urlsplit(headers["Azure-AsyncOperation"])
    query = parse_qs(url.query)

    assert url.path.endswith(f"/operations/{headers['x-ms-request-id']}")
    assert list(query) == ["api-version", "t", "c", "s", "h"]
    assert [op["id"] for op in azure_control.operations()] == [headers["x-ms-request-id"]]
    assert int(query["t"][0]) > 638_000_000_000_000_000  # .NET ticks, as Azure's


@pytest.mark.parametrize(
    "alter",
    [
        lambda url: url.split("&t=")[0],  # only api-version kept
        lambda url: url.replace("&s=", "&s=x"),  # signature changed
    ],
)
def test_an_operation_url_not_polled_as_given_is_refused(
    network_client: NetworkManagementClient, azure_control: AzureControl, alter
) -> None:
    put = put_first_response(
        network_client, RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    )
    url = put.http_response.headers["Azure-AsyncOperation"]

    response = network_client._client.send_request(HttpRequest("GET", alter(url)))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidAsyncOperationSignature"


def test_nic_vnet_and_subnet_gets_carry_an_etag_header_equal_to_the_body(
    network_client: NetworkManagementClient,
) -> None:
    seen: list[tuple[str, str]] = []

    def hook(response) -> None:
        http = response.http_response
        seen.append((http.headers.get("ETag"), http.json().get("etag")))

    network_client.network_interfaces.get(RESOURCE_GROUP, NIC1, raw_response_hook=hook)
    network_client.virtual_networks.get(RESOURCE_GROUP, "Vnet1", raw_response_hook=hook)
    network_client.subnets.get(RESOURCE_GROUP, "Vnet1", "Vnet1-1", raw_response_hook=hook)

    assert len(seen) == 3
    assert all(header and header == body for header, body in seen), seen


def test_vm_get_has_an_etag(azure_control: AzureControl, azure_ready: ReadyInfo) -> None:
    path = (
        f"/subscriptions/{azure_ready.subscription_id}/resourceGroups/{RESOURCE_GROUP}"
        "/providers/Microsoft.Compute/virtualMachines/server01"
    )

    vm = arm_get(azure_ready, path, app_token(azure_control), **{"api-version": "2024-07-01"})

    assert vm.status_code == 200
    assert vm.json()["etag"] == '"1"'


def test_check_ip_names_no_holder_unless_the_setting_asks(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    network_client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
    ).result()
    raw: list[dict] = []

    def check() -> None:
        network_client.virtual_networks.check_ip_address_availability(
            RESOURCE_GROUP,
            "Vnet1",
            ip_address=SECONDARY_IP,
            raw_response_hook=lambda r: raw.append(r.http_response.json()),
        )

    check()
    azure_control.update_settings(in_use_with_resource=True)
    check()

    assert raw[0]["available"] is False
    assert "inUseWithResource" not in raw[0]
    assert raw[1]["inUseWithResource"] == azure_control.nic(NIC1)["id"]
