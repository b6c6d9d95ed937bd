"""Instance metadata and managed-identity endpoints, through azure-identity where it applies."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest
import requests
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient

from emulator.azure.control import AzureControl, ReadyInfo

from .conftest import ARM_SCOPE, NIC1, RESOURCE_GROUP, SECONDARY_IP
from .helpers import with_secondary

TOKEN_PATH = "/metadata/identity/oauth2/token"


def _imds(
    ready: ReadyInfo, vm: str, path: str, metadata: bool = True, **params: str
) -> requests.Response:
    headers = {"Metadata": "true"} if metadata else {}
    return requests.get(f"{ready.imds[vm]}{path}", params=params, headers=headers, timeout=5)


def test_token_response_has_the_imds_shape(azure_ready: ReadyInfo) -> None:
    body = _imds(
        azure_ready, "server01", TOKEN_PATH, **{"api-version": "2018-02-01", "resource": "api://x"}
    ).json()

    assert set(body) == {
        "access_token",
        "refresh_token",
        "client_id",
        "expires_in",
        "expires_on",
        "ext_expires_in",
        "not_before",
        "resource",
        "token_type",
    }
    assert all(isinstance(v, str) for v in body.values())
    assert body["token_type"] == "Bearer" and body["resource"] == "api://x"
    assert body["refresh_token"] == ""  # "not used by managed identities" (documented sample)


def test_token_without_metadata_header_is_400(azure_ready: ReadyInfo) -> None:
    response = _imds(
        azure_ready, "server01", TOKEN_PATH, False, **{"api-version": "2018-02-01", "resource": "x"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Required metadata header not specified",
    }


def test_vm_credential_gets_its_own_identity(vm_credential, azure_control: AzureControl) -> None:
    token = vm_credential("server02").get_token(ARM_SCOPE)

    claims = jwt.decode(token.token, options={"verify_signature": False})
    server02 = next(vm for vm in azure_control.topology()["vms"] if vm["name"] == "server02")
    assert claims["oid"] == server02["principal_id"]
    assert claims["aud"] == "https://management.azure.com"


@pytest.mark.parametrize("status", [410, 429, 500, 503])
def test_azure_identity_retries_transient_imds_errors(
    vm_credential, azure_control: AzureControl, status: int
) -> None:
    azure_control.imds_fail_next(1, status, vm="server01")
    since = azure_control.last_seq()

    token = vm_credential("server01").get_token(ARM_SCOPE)

    attempts = azure_control.requests(since, target="imds")
    assert token.token
    assert [r.status for r in attempts] == [status, 200]


def test_dropped_imds_connection_is_retried(vm_credential, azure_control: AzureControl) -> None:
    azure_control.imds_drop_next(1, vm="server01")

    assert vm_credential("server01").get_token(ARM_SCOPE).token


def test_disabled_identity_is_identity_not_found(
    vm_credential, azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    azure_control.set_identity("server01", False)

    raw = _imds(
        azure_ready, "server01", TOKEN_PATH, **{"api-version": "2018-02-01", "resource": "x"}
    )
    with pytest.raises(CredentialUnavailableError):
        vm_credential("server01").get_token(ARM_SCOPE)

    assert raw.status_code == 400
    assert raw.json()["error_description"] == "Identity not found"


def test_app_identity_endpoint_serves_azure_identity(
    app_credential: ManagedIdentityCredential,
) -> None:
    claims = jwt.decode(
        app_credential.get_token(ARM_SCOPE).token, options={"verify_signature": False}
    )

    assert claims["xms_mirid"].endswith("/providers/Microsoft.Web/sites/ipmover-func")


def test_app_identity_endpoint_requires_the_secret_header(azure_ready: ReadyInfo) -> None:
    response = requests.get(
        azure_ready.app_identity.endpoint,
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com/"},
        headers={"X-IDENTITY-HEADER": "wrong"},
        timeout=5,
    )

    assert response.status_code == 400


BAD_VERSION = {
    "error": "Bad request. api-version is invalid or was not specified in the request. "
    "For more information refer to aka.ms/azureimds",
    "newest-versions": ["2025-04-07", "2024-07-17", "2024-03-15"],
}
# Every version the IMDS documentation lists as supported.
DOCUMENTED_VERSIONS = [
    "2025-04-07", "2024-07-17", "2024-03-15", "2023-11-15", "2023-07-01", "2021-12-13",
    "2021-11-15", "2021-11-01", "2021-10-01", "2021-08-01", "2021-05-01", "2021-03-01",
    "2021-02-01", "2021-01-01", "2020-12-01", "2020-10-01", "2020-09-01", "2020-07-15",
    "2020-06-01", "2019-11-01", "2019-08-15", "2019-08-01", "2019-06-04", "2019-06-01",
    "2019-04-30", "2019-03-11", "2019-02-01", "2018-10-01", "2018-04-02", "2018-02-01",
    "2017-12-01", "2017-10-01", "2017-08-01", "2017-04-02", "2017-03-01",
]  # fmt: skip


def test_instance_metadata_requires_api_version_and_header(azure_ready: ReadyInfo) -> None:
    no_version = _imds(azure_ready, "server01", "/metadata/instance")
    no_header = _imds(
        azure_ready, "server01", "/metadata/instance", False, **{"api-version": "2021-02-01"}
    )

    assert no_version.status_code == 400 and no_version.json() == BAD_VERSION
    assert no_header.status_code == 400
    assert no_header.json() == {"error": "Bad request. Required metadata header not specified"}


@pytest.mark.parametrize("version", ["2026-01-01", "2021-02-02", "latest", ""])
def test_an_unknown_api_version_gets_the_newest_versions(
    azure_ready: ReadyInfo, version: str
) -> None:
    response = _imds(
        azure_ready, "server01", "/metadata/instance/network", **{"api-version": version}
    )

    assert response.status_code == 400
    assert response.json() == BAD_VERSION


def test_every_documented_version_is_served(azure_ready: ReadyInfo) -> None:
    listed = _imds(azure_ready, "server01", "/metadata/versions").json()["apiVersions"]
    statuses = {
        version: _imds(
            azure_ready, "server01", "/metadata/instance", **{"api-version": version}
        ).status_code
        for version in DOCUMENTED_VERSIONS
    }

    assert sorted(listed) == sorted(DOCUMENTED_VERSIONS)
    assert listed == sorted(listed), "oldest first, as the documentation's example"
    assert set(statuses.values()) == {200}


@pytest.mark.parametrize("version", ["2018-02-01", "2019-08-01", "2021-02-01", "2025-04-07"])
def test_the_identity_endpoint_takes_versions_from_2018_02_01(
    azure_ready: ReadyInfo, version: str
) -> None:
    response = _imds(
        azure_ready, "server01", TOKEN_PATH, **{"api-version": version, "resource": "api://x"}
    )

    assert response.status_code == 200 and response.json()["access_token"]


@pytest.mark.parametrize("version", [None, "2017-12-01", "2019-08-02"])
def test_the_identity_endpoint_refuses_other_versions(
    azure_ready: ReadyInfo, version: str | None
) -> None:
    params = {"resource": "api://x"} | ({"api-version": version} if version else {})
    response = _imds(azure_ready, "server01", TOKEN_PATH, **params)

    assert response.status_code == 400
    assert response.json() == BAD_VERSION


def test_compute_metadata_names_the_vm(azure_ready: ReadyInfo) -> None:
    compute = _imds(
        azure_ready, "server02", "/metadata/instance/compute", **{"api-version": "2021-02-01"}
    ).json()

    assert compute["name"] == "server02"
    assert compute["resourceGroupName"] == "TestGroup1"
    assert compute["subscriptionId"] == azure_ready.subscription_id
    assert compute["resourceId"].endswith("/virtualMachines/server02")
    assert compute["vmId"]


# The compute fields of api-version 2021-02-01: the Azure REST API specs' example for that
# version (specification/imds/.../stable/2021-02-01/examples/GetInstanceMetadata.json).
COMPUTE_2021_02_01 = {
    "azEnvironment", "evictionPolicy", "isHostCompatibilityLayerVm", "licenseType", "location",
    "name", "offer", "osProfile", "osType", "placementGroupId", "plan", "platformFaultDomain",
    "platformUpdateDomain", "priority", "provider", "publicKeys", "publisher",
    "resourceGroupName", "resourceId", "securityProfile", "sku", "storageProfile",
    "subscriptionId", "tags", "tagsList", "userData", "version", "vmId", "vmScaleSetName",
    "vmSize", "zone",
}  # fmt: skip


def _strings_only(value: object) -> bool:
    if isinstance(value, dict):
        return all(_strings_only(v) for v in value.values())
    if isinstance(value, list):
        return all(_strings_only(v) for v in value)
    return isinstance(value, str)


def test_compute_metadata_has_every_field_of_its_version(azure_ready: ReadyInfo) -> None:
    def compute(version: str) -> dict:
        return _imds(
            azure_ready, "server01", "/metadata/instance/compute", **{"api-version": version}
        ).json()

    v2021 = compute("2021-02-01")
    v2020 = compute("2020-09-01")
    newest = compute("2025-04-07")

    assert set(v2021) == COMPUTE_2021_02_01
    assert v2021["evictionPolicy"] == "" and v2021["priority"] == ""  # not a Spot VM
    assert set(v2021["storageProfile"]) == {"dataDisks", "imageReference", "osDisk", "resourceDisk"}
    assert set(v2021["securityProfile"]) == {"secureBootEnabled", "virtualTpmEnabled"}
    assert v2021["osProfile"]["disablePasswordAuthentication"] == "true"
    assert _strings_only(v2021), "every primitive is a string"
    assert "evictionPolicy" not in v2020 and "userData" not in v2020
    assert "resourceDisk" not in v2020["storageProfile"]
    assert {"physicalZone", "additionalCapabilities", "host", "hostGroup"} <= set(newest)
    assert newest["securityProfile"]["securityType"] == ""


def test_network_metadata_shows_secondary_ip_after_the_move_succeeds(
    azure_ready: ReadyInfo,
    azure_control: AzureControl,
    make_network_client: Callable[..., NetworkManagementClient],
    app_credential: ManagedIdentityCredential,
) -> None:
    def addresses() -> list[str]:
        network = _imds(
            azure_ready, "server01", "/metadata/instance/network", **{"api-version": "2021-02-01"}
        )
        return [a["privateIpAddress"] for a in network.json()["interface"][0]["ipv4"]["ipAddress"]]

    azure_control.update_settings(nic_update_seconds=0.5, nic_update_mode="async")
    client = make_network_client(app_credential)
    poller = client.network_interfaces.begin_create_or_update(
        RESOURCE_GROUP, NIC1, with_secondary(azure_control.nic(NIC1)), polling=False
    )
    poller.result()

    assert addresses() == ["10.5.0.101"]  # still Updating: the host has not applied it
    assert azure_control.wait_for(lambda: addresses() == ["10.5.0.101", SECONDARY_IP], timeout=5)


def test_text_format_reads_a_leaf(azure_ready: ReadyInfo) -> None:
    response = _imds(
        azure_ready,
        "server01",
        "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress",
        **{"api-version": "2021-02-01", "format": "text"},
    )

    assert response.text == "10.5.0.101"
