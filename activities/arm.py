"""The one boundary between the mover and azure-mgmt-network.

Builds the ARM client (the app's managed identity), turns SDK models into
``NicView`` and SDK exceptions into the mover's transient/permanent errors.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient

from mover.config import ArmSettings
from mover.errors import MoverError, PermanentError, TransientError, classify_arm_failure
from mover.planning import IpConfigView, NicView

__all__ = ["map_sdk_error", "network_client", "nic_view", "retry_after_seconds"]

log = logging.getLogger("mover.arm")

# azure-core logs every request and response at INFO: far too much for the
# Functions log. Warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

_ARM_SCOPE = "https://management.azure.com/.default"


@functools.cache
def _credential() -> ManagedIdentityCredential:
    # The Function app's own identity (App Service's identity endpoint in Azure).
    return ManagedIdentityCredential()


@functools.cache
def network_client(settings: ArmSettings, subscription_id: str) -> NetworkManagementClient:
    """A client for the subscription, cached for the process.

    SDK-level retries are off: every retry happens in the orchestration, with
    durable timers that honour Retry-After and the request's deadline, and
    shows in the audit.
    """
    return NetworkManagementClient(
        _credential(),
        subscription_id,
        base_url=settings.endpoint,
        credential_scopes=[_ARM_SCOPE],
        connection_verify=settings.ca_bundle or True,
        retry_total=0,
        connection_timeout=10,
        read_timeout=30,
    )


def nic_view(nic: Any) -> NicView:
    """The facts the decisions need from an SDK NetworkInterface."""
    configs = tuple(
        IpConfigView(
            name=c.name,
            address=c.private_ip_address,
            primary=bool(c.primary),
            subnet_id=c.subnet.id if c.subnet is not None else None,
        )
        for c in (nic.ip_configurations or [])
    )
    vm = nic.virtual_machine.id if nic.virtual_machine is not None else None
    return NicView(nic.id, nic.name, vm, nic.provisioning_state, configs)


def retry_after_seconds(headers: Any) -> float | None:
    """The server's requested wait, from ``retry-after-ms`` or ``Retry-After`` (seconds)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if value:
        try:
            seconds = float(value)
            return seconds if seconds > 0 else None
        except ValueError:
            return None
    return None


def map_sdk_error(exc: Exception) -> MoverError:
    """Translate an azure-core/SDK exception (the only place that knows their types)."""
    if isinstance(exc, MoverError):
        return exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError("NoResponse", f"ARM did not answer: {exc}")
    if isinstance(exc, HttpResponseError):
        response = exc.response
        status = exc.status_code
        code = exc.error.code if exc.error is not None else None
        message = exc.error.message if exc.error is not None and exc.error.message else str(exc)
        headers = response.headers if response is not None else None
        return classify_arm_failure(status, code, message, retry_after_seconds(headers))
    log.exception("unexpected error calling ARM")
    return PermanentError("UnexpectedError", f"{type(exc).__name__}: {exc}")
