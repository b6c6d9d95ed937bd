"""The one boundary between the mover and azure-mgmt-network.

Builds the ARM client (the app's managed identity), turns SDK models into
``NicView`` and SDK exceptions into the mover's transient/permanent errors.

Every ARM call is asynchronous (azure-mgmt-network's ``aio`` client on
aiohttp): Microsoft's Python worker runs ``async def`` functions on its event
loop, so a call waiting for ARM holds no thread. The worker has one event loop
per process, and so one credential and one client per subscription serve
every call of the process.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import aiohttp
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import HttpRequest
from azure.identity.aio import ManagedIdentityCredential
from azure.mgmt.network.aio import NetworkManagementClient
from azure.mgmt.network.models import NetworkInterface

from mover.arm_budget import ARM_CALL_PRIORITY, ArmBudget, request_kind
from mover.config import ArmSettings
from mover.errors import MoverError, PermanentError, TransientError, classify_arm_failure
from mover.planning import IpConfigView, NicView

__all__ = [
    "RECENT_NICS",
    "RecentNics",
    "get_nic",
    "get_nic_to_update",
    "get_vm",
    "map_sdk_error",
    "network_client",
    "nic_view",
    "read_nic_view",
    "retry_after_seconds",
    "split_nic_id",
]

log = logging.getLogger("mover.arm")

# azure-core logs every request and response at INFO: far too much for the
# Functions log. Warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

_ARM_SCOPE = "https://management.azure.com/.default"

# Microsoft.Compute's api-version for reading a VM (its networkProfile); the
# network SDK's client sends the request, so no compute SDK is needed.
_COMPUTE_API_VERSION = "2024-07-01"

_NIC_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
    r"networkInterfaces/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/", re.IGNORECASE)


@functools.cache
def _credential() -> ManagedIdentityCredential:
    # The Function app's own identity (App Service's identity endpoint in Azure);
    # one per process, so its token cache serves every client.
    return ManagedIdentityCredential()


def _process_share() -> float:
    # The worker processes of one instance start together, each with its share.
    try:
        count = int(os.environ.get("FUNCTIONS_WORKER_PROCESS_COUNT") or 1)
    except ValueError:
        count = 1
    return 1.0 / max(1, count)


# A call whose turn is further off than 10 s becomes a transient error whose
# Retry-After the orchestration sleeps on a durable timer (mover.arm_budget.BudgetGate).
_BUDGET = ArmBudget(share=_process_share(), max_wait=10.0)


class ArmBudgetPolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Send each ARM call when its turn comes at ARM's token bucket (``mover.arm_budget``:
    the oldest move's calls first) and learn the bucket from ARM's answers."""

    def __init__(self, subscription_id: str, budget: ArmBudget = _BUDGET) -> None:
        super().__init__()
        self._subscription = subscription_id
        self._budget = budget

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        kind = request_kind(request.http_request.method)
        gate = self._budget.gate(self._subscription, kind, time.monotonic())
        priority = ARM_CALL_PRIORITY.get()
        await gate.turn(time.time() if priority is None else priority, kind)
        bucket = gate.bucket
        try:
            response = await self.next.send(request)
        except BaseException:
            bucket.answered(time.monotonic(), None)
            raise
        headers = response.http_response.headers
        if response.http_response.status_code == 429:
            bucket.throttled(time.monotonic(), retry_after_seconds(headers))
        else:
            remaining = headers.get(f"x-ms-ratelimit-remaining-subscription-{kind}s")
            count = float(remaining) if remaining and remaining.isdigit() else None
            bucket.answered(time.monotonic(), count)
        return response


@functools.cache
def network_client(settings: ArmSettings, subscription_id: str) -> NetworkManagementClient:
    """An asynchronous client for the subscription, cached for the process.

    SDK-level retries are off: every retry happens in the orchestration, with
    durable timers that honour Retry-After and the request's deadline, and
    shows in the audit. Every call waits for ARM's budget (``ArmBudgetPolicy``).
    """
    timeouts = {"connection_timeout": 10, "read_timeout": 30}
    return NetworkManagementClient(
        _credential(),
        subscription_id,
        base_url=settings.endpoint,
        credential_scopes=[_ARM_SCOPE],
        retry_total=0,
        per_retry_policies=[ArmBudgetPolicy(subscription_id)],
        **(_ca_bundle_transport(settings.ca_bundle, timeouts) if settings.ca_bundle else timeouts),
    )


def _ca_bundle_transport(ca_bundle: str, timeouts: dict[str, Any]) -> dict[str, Any]:
    """The client's transport when ARM's certificate is verified with ``caBundle``.

    Not given to azure-core as ``connection_verify``: its aiohttp transport then
    builds a new SSLContext for every request, and aiohttp pools connections per
    context, so every ARM call would open a new connection with a full TLS
    handshake. One context per process, on the session's connector, keeps
    connections alive as the system's CAs do. The session is made as azure-core
    makes its own. Must be called on the event loop.
    """
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=_ca_bundle_context(ca_bundle)),
        trust_env=True,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    return {"transport": AioHttpTransport(session=session, **timeouts)}


@functools.cache
def _ca_bundle_context(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)


def split_nic_id(nic_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a NIC id. Raises ValueError."""
    m = _NIC_ID.match(nic_id)
    if m is None:
        raise ValueError(f"not a NIC resource id: {nic_id}")
    return m["sub"], m["rg"], m["name"]


class RecentNics:
    """The NICs this process read lately, as ARM sent them, by id and etag.

    An update planned on a NIC (its etag in the plan's view) that this process read
    writes it back without reading it again: the PUT's If-Match makes ARM refuse
    it (412) if the NIC changed since, and the retry reads it. Kept in memory
    only, never in durable state (the histories keep what the decisions need).
    """

    def __init__(self, limit: int = 2048) -> None:
        self._limit = limit
        self._nics: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    def keep(self, nic: Any) -> None:
        """Remember an SDK NetworkInterface as read."""
        if not nic.id or not nic.etag:
            return
        key = nic.id.lower()
        self._nics[key] = (nic.etag, nic.as_dict())
        self._nics.move_to_end(key)
        while len(self._nics) > self._limit:
            self._nics.popitem(last=False)

    def take(self, nic_id: str, etag: str | None) -> NetworkInterface | None:
        """The NIC as read at ``etag``, forgotten here: whatever becomes of the write it
        is taken for, that version is stale after it (a retry reads the NIC). None
        when not kept at that etag."""
        kept = self._nics.pop(nic_id.lower(), None)
        if etag is None or kept is None or kept[0] != etag:
            return None
        return NetworkInterface(kept[1])


RECENT_NICS = RecentNics()


async def get_nic(settings: ArmSettings, nic_id: str) -> Any:
    """The NIC (SDK model), kept in ``RECENT_NICS``. Raises what the SDK raises."""
    subscription, group, name = split_nic_id(nic_id)
    nic = await network_client(settings, subscription).network_interfaces.get(group, name)
    RECENT_NICS.keep(nic)
    return nic


async def get_nic_to_update(settings: ArmSettings, nic_id: str, etag: str | None) -> Any:
    """The NIC to write back: as this process last read it if that was at ``etag``
    (the version the change was planned on), else read now."""
    return RECENT_NICS.take(nic_id, etag) or await get_nic(settings, nic_id)


async def read_nic_view(settings: ArmSettings, nic_id: str) -> NicView | None:
    """The NIC as the decisions see it; None when ARM has no such NIC (404)."""
    try:
        return nic_view(await get_nic(settings, nic_id))
    except ResourceNotFoundError:
        return None


async def get_vm(settings: ArmSettings, vm_id: str) -> Mapping[str, Any]:
    """A virtual machine resource as ARM returns it (GET, Microsoft.Compute)."""
    m = _SUBSCRIPTION.match(vm_id)
    if m is None:
        raise ValueError(f"not a resource id: {vm_id}")
    client = network_client(settings, m["sub"])
    response = await client.send_request(
        HttpRequest("GET", vm_id, params={"api-version": _COMPUTE_API_VERSION})
    )
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise PermanentError("UnexpectedResponse", f"ARM answered GET {vm_id} without a resource")
    return body


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
    # The SDK's ProvisioningState is a str Enum: its value, not str(), is the name.
    state = getattr(nic.provisioning_state, "value", nic.provisioning_state)
    return NicView(nic.id, nic.name, vm, state, configs, nic.etag)


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
