"""One local Azure for the whole session; every test starts from a reset emulator.

Fixtures: ``azure_emulator`` (EmulatorProcess), ``azure_ready`` (ReadyInfo),
``azure_control`` (AzureControl), ``app_credential`` (azure-identity
ManagedIdentityCredential of the Function app), ``vm_credential`` (factory: VM name ->
ManagedIdentityCredential via that VM's IMDS), ``network_client`` (the real
NetworkManagementClient with the app's identity), ``make_network_client`` (factory
taking a credential and azure-core keyword options).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient

from emulator.azure.control import AzureControl, ReadyInfo
from emulator.azure.launcher import EmulatorProcess

RESOURCE_GROUP = "TestGroup1"
NIC1, NIC2 = "server01535", "server02800"
SECONDARY_IP = "10.5.0.110"
ARM_SCOPE = "https://management.azure.com/.default"
# Small values keep the suite fast; Retry-After is fractional (an emulator extension).
NIC_UPDATE_SECONDS = 0.3
RETRY_AFTER = 0.2

_IDENTITY_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "MSI_ENDPOINT",
)


@pytest.fixture(scope="session")
def azure_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """The emulator subprocess, started once per session."""
    process = EmulatorProcess(
        tmp_path_factory.mktemp("azure-state"),
        ["--nic-update-seconds", str(NIC_UPDATE_SECONDS), "--retry-after", str(RETRY_AFTER)],
    )
    process.start()
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="session")
def azure_ready(azure_emulator: EmulatorProcess) -> ReadyInfo:
    """The emulator's ready line."""
    return azure_emulator.ready


@pytest.fixture(scope="session")
def azure_control(azure_ready: ReadyInfo) -> Iterator[AzureControl]:
    """Control API client."""
    control = AzureControl.from_ready(azure_ready)
    yield control
    control.close()


@pytest.fixture(autouse=True)
def _reset_azure(azure_control: AzureControl) -> None:
    azure_control.reset()


@pytest.fixture
def app_credential(
    azure_ready: ReadyInfo, monkeypatch: pytest.MonkeyPatch
) -> ManagedIdentityCredential:
    """The Function app's managed identity, through the App Service style endpoint."""
    for name in _IDENTITY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in azure_ready.app_identity_env().items():
        monkeypatch.setenv(name, value)
    return ManagedIdentityCredential()


@pytest.fixture
def vm_credential(
    azure_ready: ReadyInfo, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], ManagedIdentityCredential]:
    """Factory: a VM's managed identity via its IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST).

    msal reads the variables at every token request, so they stay set for the test.
    """

    def make(vm: str) -> ManagedIdentityCredential:
        for name in _IDENTITY_VARS:
            monkeypatch.delenv(name, raising=False)
        for name, value in azure_ready.imds_env(vm).items():
            monkeypatch.setenv(name, value)
        return ManagedIdentityCredential()

    return make


@pytest.fixture
def make_network_client(azure_ready: ReadyInfo) -> Callable[..., NetworkManagementClient]:
    """Factory: NetworkManagementClient(credential, **azure-core options) for the emulator."""

    def make(credential: Any, **options: Any) -> NetworkManagementClient:
        return NetworkManagementClient(
            credential,
            azure_ready.subscription_id,
            base_url=azure_ready.arm,
            credential_scopes=[ARM_SCOPE],
            connection_verify=azure_ready.ca_file,
            **options,
        )

    return make


@pytest.fixture
def network_client(
    app_credential: ManagedIdentityCredential,
    make_network_client: Callable[..., NetworkManagementClient],
) -> NetworkManagementClient:
    """The real SDK client, authenticated as the Function app."""
    return make_network_client(app_credential)
