"""The ARM server's routes and its request pipeline (faults, auth, api-version, throttling).

Paths are matched case-insensitively, as ARM does; clients differ in case
(``checkIPAddressAvailability`` vs ``CheckIPAddressAvailability``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .core import Emulator
from .errors import ArmError, gateway_not_found, not_found
from .network import LroFailure
from .requestlog import RequestRecord
from .resources import resource_group_json, subscription_json, vm_json
from .tokens import ARM_AUDIENCES, TokenError

__all__ = ["add_arm_routes", "retry_after_headers"]

_SUB = r"^/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourcegroups/(?P<rg>[^/]+)"
_NET = _RG + r"/providers/microsoft\.network"
_COMPUTE = _RG + r"/providers/microsoft\.compute"
_AUTHORIZATION_URI = "https://login.windows.net/"


def retry_after_headers(value: float) -> dict[str, str]:
    """``Retry-After: N`` for whole seconds; for fractions ``retry-after-ms`` instead.

    HTTP and the SDK (which parses Retry-After of a 201 as int) need whole seconds;
    azure-core also honours ``retry-after-ms``, which lets tests poll faster than 1 s.
    """
    if float(value).is_integer():
        return {"Retry-After": str(int(value))}
    return {"retry-after-ms": str(round(value * 1000))}


@dataclass
class ArmCall:
    """One ARM request after the pipeline accepted it."""

    request: web.Request
    params: dict[str, str]
    api_version: str
    now: float
    request_id: str  # this response's x-ms-request-id

    @property
    def base(self) -> str:
        """Scheme and authority the client used."""
        return f"{self.request.scheme}://{self.request.host}"


Handler = Callable[[Emulator, ArmCall], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


# -- handlers ------------------------------------------------------------------------


def _check_scope(emu: Emulator, call: ArmCall) -> None:
    topology = emu.topology
    sub = call.params.get("sub")
    if sub is not None and sub.lower() != topology.subscription_id.lower():
        raise gateway_not_found(
            "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
        )
    rg = call.params.get("rg")
    if rg is not None and rg.lower() not in {g.lower() for g in topology.resource_groups}:
        raise gateway_not_found(
            "ResourceGroupNotFound", f"Resource group '{rg}' could not be found."
        )


def _page(emu: Emulator, call: ArmCall, items: list[dict[str, Any]]) -> web.Response:
    size = max(1, emu.settings.page_size)
    try:
        start = int(call.request.query.get("$skiptoken", "0"))
    except ValueError:
        start = 0
    body: dict[str, Any] = {"value": items[start : start + size]}
    if start + size < len(items):
        body["nextLink"] = (
            f"{call.base}{call.request.path}?api-version={call.api_version}"
            f"&$skiptoken={start + size}"
        )
    return _json(body)


async def list_subscriptions(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET /subscriptions."""
    return _json(
        {"value": [subscription_json(emu.topology)], "count": {"type": "Total", "value": 1}}
    )


async def get_subscription(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET /subscriptions/{sub}."""
    _check_scope(emu, call)
    return _json(subscription_json(emu.topology))


async def get_resource_group(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET a resource group."""
    _check_scope(emu, call)
    wanted = call.params["rg"].lower()
    name = next(g for g in emu.topology.resource_groups if g.lower() == wanted)
    return _json(resource_group_json(emu.topology, emu.state.ids, name))


async def list_nics(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET the NICs of the resource group or the subscription (paged)."""
    _check_scope(emu, call)
    return _page(emu, call, emu.network.list_nics(call.params.get("rg")))


def _with_etag(resource: dict[str, Any]) -> web.Response:
    """A single resource with an ``ETag`` header equal to its etag (recorded for NICs,
    VNets and subnets)."""
    return _json(resource, headers={"ETag": resource["etag"]})


async def get_nic(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET a NIC."""
    _check_scope(emu, call)
    return _with_etag(emu.network.get_nic(call.params["nic"], call.params["rg"]))


async def list_ipconfigs(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET the ip-configurations of a NIC."""
    _check_scope(emu, call)
    nic = emu.network.get_nic(call.params["nic"], call.params["rg"])
    return _page(emu, call, nic["properties"].get("ipConfigurations", []))


async def get_ipconfig(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET one ip-configuration of a NIC."""
    _check_scope(emu, call)
    nic = emu.network.get_nic(call.params["nic"], call.params["rg"])
    wanted = call.params["ipconfig"].lower()
    for config in nic["properties"].get("ipConfigurations", []):
        if config["name"].lower() == wanted:
            return _json(config)
    raise ArmError(
        404,
        "NotFound",
        f"Resource {nic['id']}/ipConfigurations/{call.params['ipconfig']} not found.",
    )


async def put_nic(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """PUT a NIC: validate, store with provisioningState Updating, start the operation.

    The operation's id is this response's ``x-ms-request-id``. Answered at once with
    ``Updating`` and ``Retry-After`` (async), or held until the update ends and answered
    with its outcome, no ``Retry-After`` (sync); ``nic_update_mode`` chooses.
    """
    _check_scope(emu, call)
    raw = await call.request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: '{exc}'.",
        ) from None
    rule = emu.faults.take("lro", "PUT", call.request.path)
    failure = None
    if rule is not None:
        failure = LroFailure(rule.code, rule.message or "The operation failed (injected fault).")
    try:
        result = emu.network.put_nic(
            call.params["nic"],
            body,
            if_match=call.request.headers.get("If-Match"),
            if_none_match=call.request.headers.get("If-None-Match"),
            now=call.now,
            api_version=call.api_version,
            operation_id=call.request_id,
            lro_failure=failure,
            group=call.params["rg"],
        )
    except ArmError:
        if rule is not None:  # a refused PUT starts no operation: give the fault back
            rule.give_back()
        raise
    operation = result.operation
    resource = result.resource
    if result.conflict and rule is not None:  # the operation failed anyway
        rule.give_back()
    elif operation.sync:
        await asyncio.sleep(max(0.0, operation.done_at - time.time()))
        emu.state.settle(max(time.time(), operation.done_at))
        resource = copy.deepcopy(emu.network.get_nic(operation.nic))
    headers = {
        "Azure-AsyncOperation": emu.network.operation_url(operation, call.api_version),
        "Azure-AsyncNotification": "Enabled",
    }
    if resource["properties"].get("provisioningState") == "Updating":
        headers.update(retry_after_headers(emu.settings.retry_after))
    return _json(resource, status=201 if result.created else 200, headers=headers)


async def get_operation(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET an async operation's status (the ``Azure-AsyncOperation`` URL)."""
    _check_scope(emu, call)
    operation = emu.state.operations.get(call.params["op"])
    if operation is None or operation.location.lower() != call.params["loc"].lower():
        raise ArmError(404, "OperationNotFound", f"Operation {call.params['op']} was not found.")
    if not emu.network.signer.valid(operation.id, operation.started, dict(call.request.query)):
        # Azure's reaction to an altered signed URL is not recorded: refuse it loudly, so
        # a client that rebuilds the URL instead of polling it as given is caught.
        raise ArmError(
            400,
            "InvalidAsyncOperationSignature",
            "The signature query parameters (t, c, s, h) of the operation URL are missing or "
            "do not match; poll the Azure-AsyncOperation URL exactly as given.",
        )
    headers = {}
    if not operation.finished:
        headers.update(retry_after_headers(emu.settings.retry_after))
    return _json(operation.body(), headers=headers)


async def list_vnets(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET the VNets of the resource group."""
    _check_scope(emu, call)
    return _page(emu, call, emu.network.list_vnets(call.params["rg"]))


async def get_vnet(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET a VNet."""
    _check_scope(emu, call)
    return _with_etag(emu.network.get_vnet(call.params["vnet"], call.params["rg"]))


async def list_subnets(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET the subnets of a VNet."""
    _check_scope(emu, call)
    vnet = emu.network.get_vnet(call.params["vnet"], call.params["rg"])
    return _page(emu, call, vnet["properties"]["subnets"])


async def get_subnet(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET a subnet."""
    _check_scope(emu, call)
    params = call.params
    return _with_etag(emu.network.get_subnet(params["vnet"], params["subnet"], params["rg"]))


async def check_ip(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET checkIPAddressAvailability."""
    _check_scope(emu, call)
    query = {k.lower(): v for k, v in call.request.query.items()}
    return _json(
        emu.network.check_ip(call.params["vnet"], query.get("ipaddress"), call.params["rg"])
    )


async def list_vms(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET the VMs of the resource group."""
    _check_scope(emu, call)
    group = call.params["rg"].lower()
    vms = [
        vm_json(
            emu.topology, emu.state.ids, vm, emu.state.identity_enabled.get(vm.name.lower(), True)
        )
        for vm in emu.topology.vms
        if emu.topology.group_of(vm).lower() == group
    ]
    return _page(emu, call, vms)


async def get_vm(emu: Emulator, call: ArmCall) -> web.StreamResponse:
    """GET a VM."""
    _check_scope(emu, call)
    vm = emu.topology.vm(call.params["vm"])
    if vm is None or emu.topology.group_of(vm).lower() != call.params["rg"].lower():
        raise not_found("Microsoft.Compute/virtualMachines", call.params["vm"], call.params["rg"])
    enabled = emu.state.identity_enabled.get(vm.name.lower(), True)
    return _json(vm_json(emu.topology, emu.state.ids, vm, enabled))


_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(pattern + "/?$", re.IGNORECASE), handler)
    for method, pattern, handler in [
        ("GET", r"^/subscriptions", list_subscriptions),
        ("GET", _SUB, get_subscription),
        ("GET", _RG, get_resource_group),
        ("GET", _SUB + r"/providers/microsoft\.network/networkinterfaces", list_nics),
        ("GET", _NET + r"/networkinterfaces", list_nics),
        ("GET", _NET + r"/networkinterfaces/(?P<nic>[^/]+)", get_nic),
        ("PUT", _NET + r"/networkinterfaces/(?P<nic>[^/]+)", put_nic),
        ("GET", _NET + r"/networkinterfaces/(?P<nic>[^/]+)/ipconfigurations", list_ipconfigs),
        (
            "GET",
            _NET + r"/networkinterfaces/(?P<nic>[^/]+)/ipconfigurations/(?P<ipconfig>[^/]+)",
            get_ipconfig,
        ),
        (
            "GET",
            _SUB
            + r"/providers/microsoft\.network/locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)",
            get_operation,
        ),
        ("GET", _NET + r"/virtualnetworks", list_vnets),
        ("GET", _NET + r"/virtualnetworks/(?P<vnet>[^/]+)", get_vnet),
        ("GET", _NET + r"/virtualnetworks/(?P<vnet>[^/]+)/subnets", list_subnets),
        ("GET", _NET + r"/virtualnetworks/(?P<vnet>[^/]+)/subnets/(?P<subnet>[^/]+)", get_subnet),
        ("GET", _NET + r"/virtualnetworks/(?P<vnet>[^/]+)/checkipaddressavailability", check_ip),
        ("GET", _COMPUTE + r"/virtualmachines", list_vms),
        ("GET", _COMPUTE + r"/virtualmachines/(?P<vm>[^/]+)", get_vm),
    ]
]


def _route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    path_matched = False
    for route_method, pattern, handler in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        path_matched = True
        if route_method == method or (method == "HEAD" and route_method == "GET"):
            return handler, match.groupdict()
    if path_matched:
        raise ArmError(
            405,
            "MethodNotAllowed",
            f"The requested method '{method}' is not allowed for '{path}' by this emulator.",
            gateway=True,
        )
    raise gateway_not_found(
        "InvalidResourceType",
        f"The resource path '{path}' is not served by the local Azure emulator.",
    )


# -- pipeline ------------------------------------------------------------------------


def _unauthorized(error: TokenError | None, missing: bool) -> ArmError:
    if missing:
        code, message = (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
        description = "The authentication failed because of missing 'Authorization' header."
    elif error is None:
        code = "AuthenticationFailed"
        message = (
            "Authentication failed. The 'Authorization' header is provided in an invalid format."
        )
        description = "The authentication failed because of invalid 'Authorization' header format."
    else:
        code, message, description = error.code, error.message, error.message
    challenge = (
        f'Bearer authorization_uri="{_AUTHORIZATION_URI}", error="invalid_token", '
        f'error_description="{description}"'
    )
    return ArmError(401, code, message, headers={"WWW-Authenticate": challenge}, gateway=True)


def _authenticate(
    emu: Emulator, request: web.Request, now: float
) -> tuple[str | None, ArmError | None]:
    header = request.headers.get("Authorization")
    if not header:
        return None, _unauthorized(None, missing=True)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, _unauthorized(None, missing=False)
    try:
        claims = emu.issuer.validate(token.strip(), ARM_AUDIENCES, now)
    except TokenError as exc:
        return None, _unauthorized(exc, missing=False)
    return str(claims.get("oid") or claims.get("sub") or "unknown"), None


def _arm_headers(emu: Emulator, request: web.Request, request_id: str) -> dict[str, str]:
    correlation = request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "x-ms-request-id": request_id,
        "x-ms-correlation-request-id": correlation,
        "x-ms-routing-request-id": f"{emu.topology.location.upper()}:{stamp}:{request_id}",
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
        "Expires": "-1",
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Content-Type-Options": "nosniff",
        "Server": "Microsoft-HTTPAPI/2.0",
    }
    client_request_id = request.headers.get("x-ms-client-request-id")
    if client_request_id:
        headers["x-ms-client-request-id"] = client_request_id
    return headers


async def _run_pipeline(
    emu: Emulator, request: web.Request, record: RequestRecord
) -> web.StreamResponse:
    now = time.time()
    kind = record.kind or "read"
    principal, auth_error = _authenticate(emu, request, now)
    record.principal = principal

    rule = emu.faults.take("arm", request.method, request.path)
    if rule is not None:
        record.fault = rule.action
        if rule.action == "drop":
            return _drop(request)
        if rule.action == "delay":
            await asyncio.sleep(rule.delay)
        elif rule.action == "error":
            headers = {}
            if rule.retry_after is not None:
                headers.update(retry_after_headers(rule.retry_after))
            raise ArmError(
                rule.status,
                rule.code,
                rule.message or "Injected fault.",
                headers=headers,
                gateway=True,
            )

    if auth_error is not None:
        raise auth_error
    assert principal is not None
    query = {k.lower(): v for k, v in request.query.items()}
    api_version = query.get("api-version")
    if not api_version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
            gateway=True,
        )
    decision = emu.throttler.check(emu.topology.subscription_id, principal, kind, now)
    remaining = {f"x-ms-ratelimit-remaining-subscription-{kind}s": str(decision.remaining)}
    if not decision.allowed:
        # Wording as recorded (ARM's answer quoted in public code), no details.
        raise ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of '{kind}' requests for subscription '{emu.topology.subscription_id}' "
            f"actor '{principal}' exceeded. Please try again after '{decision.retry_after}' "
            "seconds after additional tokens are available. Refer to "
            "https://aka.ms/arm-throttling for additional information.",
            headers={"Retry-After": str(decision.retry_after), **remaining},
            gateway=True,
        )
    emu.state.settle(now)  # finish operations whose time has come (persists if any)
    handler, params = _route(request.method, request.path)
    try:
        response = await handler(
            emu, ArmCall(request, params, api_version, now, str(record.request_id))
        )
    except ArmError as exc:
        exc.headers.update(remaining)
        raise
    response.headers.update(remaining)
    return response


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.close()  # the client sees the connection closed without a response
    return web.Response(status=499)


def add_arm_routes(app: web.Application, emu: Emulator) -> None:
    """Add the catch-all ARM route (register control/discovery routes before this)."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        record = RequestRecord(
            seq=0,
            time=time.time(),
            target="arm",
            method=request.method,
            path=request.path,
            query=request.query_string,
            status=0,
            duration_ms=0.0,
            kind="read" if request.method in ("GET", "HEAD") else "write",
            client_request_id=request.headers.get("x-ms-client-request-id"),
            request_id=request_id,
        )
        try:
            response = await _run_pipeline(emu, request, record)
        except ArmError as exc:
            record.error_code = exc.code
            response = _json(exc.body(), status=exc.status, headers=exc.headers)
        if record.fault != "drop":
            response.headers.update(_arm_headers(emu, request, request_id))
        record.status = response.status if record.fault != "drop" else 0
        record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        emu.log.add(record)
        return response

    app.router.add_route("*", "/{tail:.*}", dispatch)
