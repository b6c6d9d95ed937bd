"""Injected faults and throttling as the real SDK (azure-core's RetryPolicy) sees them."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.network import NetworkManagementClient

from emulator.azure.control import AzureControl, ReadyInfo

from .conftest import NIC1, RESOURCE_GROUP
from .helpers import with_secondary

NIC_GET = r"/networkInterfaces/server01535$"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_statuses_are_retried_by_the_sdk(
    network_client: NetworkManagementClient, azure_control: AzureControl, status: int
) -> None:
    azure_control.fail_next(
        2, method="GET", path=NIC_GET, status=status, code="RetryableError", retry_after=0.3
    )
    since = azure_control.last_seq()

    nic = network_client.network_interfaces.get(RESOURCE_GROUP, NIC1)

    attempts = azure_control.requests(since, method="GET")
    assert nic.name == NIC1
    assert [r.status for r in attempts] == [status, status, 200]
    assert attempts[2].time - attempts[1].time >= 0.29  # Retry-After honoured


def test_409_is_not_retried(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.fail_next(1, method="PUT", status=409, code="AnotherOperationInProgress")
    since = azure_control.last_seq()

    with pytest.raises(ResourceExistsError):
        network_client.network_interfaces.begin_create_or_update(
            RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1))
        )

    assert len(azure_control.requests(since, method="PUT")) == 1


def test_dropped_connection_is_retried_then_succeeds(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    azure_control.drop_next(1, method="GET", path=NIC_GET)

    assert network_client.network_interfaces.get(RESOURCE_GROUP, NIC1).name == NIC1


def test_dropped_connection_surfaces_as_service_response_error(
    app_credential,
    make_network_client: Callable[..., NetworkManagementClient],
    azure_control: AzureControl,
) -> None:
    client = make_network_client(app_credential, retry_total=0)
    client.network_interfaces.get(RESOURCE_GROUP, NIC1)  # token fetched, connection open
    azure_control.drop_next(1, method="GET", path=NIC_GET)

    with pytest.raises(ServiceResponseError):
        client.network_interfaces.get(RESOURCE_GROUP, NIC1)


def test_delay_beyond_read_timeout_surfaces_as_service_response_error(
    app_credential,
    make_network_client: Callable[..., NetworkManagementClient],
    azure_control: AzureControl,
) -> None:
    client = make_network_client(app_credential, retry_total=0, read_timeout=0.3)
    azure_control.delay_next(1, 1.0, method="GET", path=NIC_GET)

    with pytest.raises(ServiceResponseError):
        client.network_interfaces.get(RESOURCE_GROUP, NIC1)


def test_unreachable_arm_is_service_request_error(app_credential, azure_ready: ReadyInfo) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        client = NetworkManagementClient(
            app_credential,
            azure_ready.subscription_id,
            base_url=f"https://127.0.0.1:{port}",
            credential_scopes=["https://management.azure.com/.default"],
            connection_verify=azure_ready.ca_file,
            retry_total=0,
        )
        with pytest.raises(ServiceRequestError):
            client.network_interfaces.get(RESOURCE_GROUP, NIC1)


def test_read_burst_is_throttled_with_429_and_retry_after(
    app_credential,
    make_network_client: Callable[..., NetworkManagementClient],
    azure_control: AzureControl,
    azure_ready: ReadyInfo,
) -> None:
    azure_control.update_settings(read_burst=3, read_rate=0.5)
    client = make_network_client(app_credential, retry_total=0)
    for _ in range(3):
        client.network_interfaces.get(RESOURCE_GROUP, NIC1)

    with pytest.raises(HttpResponseError) as caught:
        client.network_interfaces.get(RESOURCE_GROUP, NIC1)

    response = caught.value.response
    wait = int(response.headers["Retry-After"])
    assert caught.value.status_code == 429
    assert wait >= 1
    assert response.json() == {  # ARM's own envelope: no details
        "error": {
            "code": "SubscriptionRequestsThrottled",
            "message": f"Number of 'read' requests for subscription "
            f"'{azure_ready.subscription_id}' actor '{azure_ready.app_identity.principal_id}' "
            f"exceeded. Please try again after '{wait}' seconds after additional tokens are "
            "available. Refer to https://aka.ms/arm-throttling for additional information.",
        }
    }
    assert response.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    (counters,) = azure_control.counters().values()
    assert (counters.reads, counters.throttled) == (4, 1)


def test_remaining_reads_header_counts_down(
    network_client: NetworkManagementClient, azure_control: AzureControl
) -> None:
    seen: list[int] = []

    def hook(response) -> None:
        seen.append(
            int(response.http_response.headers["x-ms-ratelimit-remaining-subscription-reads"])
        )

    for _ in range(3):
        network_client.network_interfaces.get(RESOURCE_GROUP, NIC1, raw_response_hook=hook)

    assert seen[0] > seen[1] > seen[2]


def test_write_bucket_is_separate_from_reads(
    app_credential,
    make_network_client: Callable[..., NetworkManagementClient],
    azure_control: AzureControl,
) -> None:
    azure_control.update_settings(write_burst=1, write_rate=0.1)
    client = make_network_client(app_credential, retry_total=0)
    body = with_secondary(azure_control.nic(NIC1))
    client.network_interfaces.begin_create_or_update(RESOURCE_GROUP, NIC1, body).result()

    with pytest.raises(HttpResponseError) as caught:
        client.network_interfaces.begin_create_or_update(
            RESOURCE_GROUP, NIC1, azure_control.nic(NIC1)
        )

    assert caught.value.status_code == 429
    assert "x-ms-ratelimit-remaining-subscription-writes" in caught.value.response.headers
    assert client.network_interfaces.get(RESOURCE_GROUP, NIC1).name == NIC1
