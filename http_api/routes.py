"""HTTP API v1 (docs/api.md): queue moves, read requests, IP state and history, health.

Routes are anonymous at the Functions level: every caller is authenticated
here, from its bearer token, so that nodes need no function keys. Durable's
own management URLs (which carry the system key) are never handed out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.arm import get_vm, map_sdk_error, network_client, nic_view, read_nic_view
from mover.access import (
    NOT_CONFIGURED,
    ApiError,
    MoveGrant,
    authorize_dry_run,
    authorize_move,
    authorize_read_ip,
    is_operator,
)
from mover.config import ConfigError, Member, MoverConfig, current_config
from mover.dry_run import MemberReading, dry_run_report
from mover.history import export_page, parse_export_query
from mover.intake import (
    build_move_request,
    is_retry_of,
    parse_ip,
    parse_move_body,
    parse_request_id,
)
from mover.lock import IpLock
from mover.logtext import printable
from mover.member_nics import MemberNics, MemberRef
from mover.planning import NicView, find_ip_holders
from mover.records import Action, MoveRequest, RequestStatus, iso
from mover.tokens import AuthenticationError, Caller, KeysUnavailableError
from orchestrations.ip_entities import history_entity, lock_entity
from orchestrations.move_ip import MOVE_IP

from .nic_cache import NicCache
from .status import json_value, record_of_instance, token_validator

__all__ = ["bp"]

log = logging.getLogger("mover.api")

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

# Per worker process: IP state reads share one ARM list per resource group.
_NICS = NicCache()

Handler = Callable[[func.HttpRequest, df.DurableOrchestrationClient], Awaitable[func.HttpResponse]]


@bp.route(route="v1/health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness, whether the configuration is valid (why not: to operators only), and the
    token audience the app accepts (public: the app registration's identifier URI; the
    node's doctor compares it with the audience it asks IMDS for)."""
    try:
        config = current_config()
    except ConfigError as exc:
        return _not_configured(req, exc)
    return _json(200, {"status": "ok", "audience": config.auth.audience})


@bp.route(route="v1/ips/{ip}/acquire", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def acquire(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Queue a move of the IP to the caller's NIC."""
    return await _guarded(req, client, lambda r, c: _submit(r, c, Action.ACQUIRE))


@bp.route(route="v1/ips/{ip}/release", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def release(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Queue the removal of the IP from the caller's NIC."""
    return await _guarded(req, client, lambda r, c: _submit(r, c, Action.RELEASE))


@bp.route(route="v1/requests/{request_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_request(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """A request's state, steps and error: for the VM that made it, and operators."""
    return await _guarded(req, client, _read_request)


@bp.route(route="v1/ips/{ip}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_ip(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Who holds the IP per ARM, and its lock: holder and queue."""
    return await _guarded(req, client, _read_ip)


@bp.route(route="v1/ips/{ip}/history", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_history(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """The IP's audit records, newest first."""
    return await _guarded(req, client, _read_history)


@bp.route(route="v1/clusters/{cluster}/dry-run", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def dry_run(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Operators: what a move of each IP to each member would change; reads only."""
    return await _guarded(req, client, _dry_run)


@bp.route(route="v1/ips/{ip}/history/export", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def export_history(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """The IP's audit records as JSON lines, oldest first, a page at a time."""
    return await _guarded(req, client, _export_history)


# -- handlers -----------------------------------------------------------------


async def _guarded(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, handler: Handler
) -> func.HttpResponse:
    """Turn refusals into JSON errors; nothing else escapes as a bare 500."""
    try:
        return await handler(req, client)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message, exc.headers)
    except ConfigError as exc:
        return _not_configured(req, exc)
    except AuthenticationError as exc:
        # Everything but the method is the caller's text: one escaped line each.
        log.info("refused %s %s: %s", req.method, printable(req.url), printable(exc))
        return _error(401, "unauthenticated", str(exc), {"WWW-Authenticate": "Bearer"})
    except KeysUnavailableError as exc:
        log.warning("cannot authenticate %s %s: %s", req.method, printable(req.url), exc)
        retry = str(math.ceil(exc.retry_after))
        return _error(503, "keys_unavailable", str(exc), {"Retry-After": retry})


_LOGGED_CONFIG_ERRORS: set[str] = set()


def _not_configured(req: func.HttpRequest, exc: ConfigError) -> func.HttpResponse:
    """503 not_configured: the problems for an operator, a bare statement for anyone else."""
    if str(exc) not in _LOGGED_CONFIG_ERRORS:
        # Once per distinct problem list and process: a probe every few seconds
        # must not fill the log with the same lines.
        _LOGGED_CONFIG_ERRORS.add(str(exc))
        log.error("%s", exc)
    message = str(exc) if _from_an_operator(req, exc) else NOT_CONFIGURED
    return _error(503, "not_configured", message)


def _from_an_operator(req: func.HttpRequest, exc: ConfigError) -> bool:
    """Whether the request carries a valid operator's token, per the auth section alone."""
    if exc.auth is None or not req.headers.get("Authorization"):
        return False
    try:
        caller = token_validator(exc.auth).validate(req.headers.get("Authorization"))
    except (AuthenticationError, KeysUnavailableError):
        return False
    return exc.auth.operator_role in caller.roles


def _authenticate(req: func.HttpRequest) -> tuple[MoverConfig, Caller]:
    config = current_config()
    caller = token_validator(config.auth).validate(req.headers.get("Authorization"))
    return config, caller


async def _submit(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, action: Action
) -> func.HttpResponse:
    config, caller = _authenticate(req)
    ip = parse_ip(req.route_params["ip"])
    body = parse_move_body(req.get_body())
    grant = authorize_move(config, caller, ip, body.target)
    # A retried POST gets its request back, even when its deadline has passed since.
    if body.request_id is not None:
        existing = await _existing(client, body.request_id, action, grant, caller)
        if existing is not None:
            return existing
    await _refuse_a_flood(client, config, caller, ip)
    now = dt.datetime.now(dt.UTC)
    request = build_move_request(action, grant, caller, body, now, config.limits, str(uuid.uuid4()))
    try:
        await client.start_new(MOVE_IP, request.request_id, request.to_dict())
    except Exception as exc:
        # Two POSTs with one requestId raced: the other one started it.
        log.info(
            "start of %s refused (%s); answering with the existing one",
            request.request_id,
            printable(exc),
        )
        existing = await _existing(client, request.request_id, action, grant, caller)
        if existing is not None:
            return existing
        raise
    log.info(
        "queued request=%s action=%s ip=%s member=%s event=%s",
        request.request_id,
        action,
        ip,
        request.member,
        printable(request.context.get("event")),
    )
    return _accepted(request.request_id, ip, action, RequestStatus.QUEUED, None)


async def _refuse_a_flood(
    client: df.DurableOrchestrationClient, config: MoverConfig, caller: Caller, ip: str
) -> None:
    """429 when the caller already has as many requests holding or waiting as allowed.

    The lock entity refuses the excess atomically too (a burst of POSTs may all
    pass this check before any joins the queue); this answers the common case
    before anything is queued.
    """
    state = await client.read_entity_state(lock_entity(ip))
    lock = IpLock.from_dict(json_value(state.entity_state) if state.entity_exists else None)
    limit = config.limits.max_pending_per_caller
    if lock.pending_of(caller.principal_id) >= limit:
        retry_after = max(1, math.ceil(config.limits.lock_poll_seconds))
        raise ApiError(
            429,
            "too_many_pending",
            f"this caller already has {limit} requests holding or waiting for {ip}'s lock",
            {"Retry-After": str(retry_after)},
        )


async def _existing(
    client: df.DurableOrchestrationClient,
    request_id: str,
    action: Action,
    grant: MoveGrant,
    caller: Caller,
) -> func.HttpResponse | None:
    """The answer for a retried POST, None when the request id is new."""
    status = await client.get_status(request_id, show_input=True)
    if not status or status.runtime_status is None:
        return None
    earlier = _input_of(status)
    if earlier is None or not is_retry_of(earlier, action, grant, caller):
        raise ApiError(
            409, "request_id_conflict", f"requestId {request_id} was used for another request"
        )
    record = record_of_instance(status, earlier)
    return _accepted(
        earlier.request_id,
        earlier.ip,
        earlier.action,
        RequestStatus(record["status"]),
        record,
    )


async def _read_request(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    config, caller = _authenticate(req)
    request_id = parse_request_id(req.route_params["request_id"])
    status = await client.get_status(request_id, show_input=True)
    request = _input_of(status) if status and status.runtime_status else None
    if request is None:
        raise ApiError(404, "unknown_request", f"no request {request_id}")
    # A VM's own request: the same identity, and a VM's kind of token.
    mine = caller.app_only and request.caller_principal == caller.principal_id
    if not (mine or is_operator(config, caller)):
        # Not 403: another VM's request ids are not this caller's business.
        raise ApiError(404, "unknown_request", f"no request {request_id}")
    return _json(200, record_of_instance(status, request))


async def _read_ip(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    config, caller = _authenticate(req)
    cluster, spec = authorize_read_ip(config, caller, parse_ip(req.route_params["ip"]))

    async def read_nics() -> list[NicView]:
        # The whole group, unlike a move: the state shows any holder, a member or not.
        arm = network_client(config.arm, cluster.subscription_id)
        return [nic_view(n) async for n in arm.network_interfaces.list(cluster.resource_group)]

    try:
        read = await _NICS.nics(
            cluster.subscription_id,
            cluster.resource_group,
            config.limits.ip_state_cache_seconds,
            read_nics,
        )
    except Exception as exc:
        error = map_sdk_error(exc)
        return _error(502, "arm_unavailable", f"could not read the NICs from ARM: {error}")
    held_by = []
    for nic in find_ip_holders(list(read.nics), spec.address):
        member = cluster.member_by_vm(nic.vm_id) if nic.vm_id else None
        held_by.append({"nic": nic.id, "vm": nic.vm_id, "member": member.name if member else None})
    lock_state = await client.read_entity_state(lock_entity(spec.address))
    lock = lock_state.entity_state if lock_state.entity_exists else None
    lock = json_value(lock) or {}
    return _json(
        200,
        {
            "ip": spec.address,
            "cluster": cluster.name,
            "ipConfigName": spec.ip_config_name,
            "holders": held_by,
            "holdersReadAt": _epoch_iso(read.read_at),
            "lock": {
                "holder": lock.get("holder"),
                "since": _epoch_iso(lock.get("since")),
                "leaseUntil": _epoch_iso(lock.get("lease_until")),
                "queue": [w["request_id"] for w in lock.get("queue", [])],
            },
        },
    )


async def _dry_run(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    config, caller = _authenticate(req)
    cluster = authorize_dry_run(config, caller, req.route_params["cluster"])
    read_at = iso(dt.datetime.now(dt.UTC))

    async def read(member: Member) -> MemberReading:
        # As a move reads a member (activities.network.read_nics): the NIC the
        # configuration names, else the VM's NICs; whole NICs here, for the name checks.
        # A fresh MemberNics: a dry run must not trust NIC ids learned earlier.
        ref = MemberRef(member.vm_id, member.nic_id)
        try:
            views = await MemberNics().read(
                [ref],
                (),
                lambda vm_id: get_vm(config.arm, vm_id),
                lambda nic_id: read_nic_view(config.arm, nic_id),
            )
        except Exception as exc:
            error = map_sdk_error(exc)
            return MemberReading(member, error=error.info(), read_vm=member.nic_id is None)
        return MemberReading(member, tuple(views), read_vm=member.nic_id is None)

    readings = await asyncio.gather(*(read(m) for m in cluster.members))
    report = dry_run_report(cluster, readings, read_at)
    log.info(
        "dry run cluster=%s members=%d problems=%d",
        cluster.name,
        len(readings),
        len(report["problems"]),
    )
    return _json(200, report)


async def _read_history(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    config, caller = _authenticate(req)
    _, spec = authorize_read_ip(config, caller, parse_ip(req.route_params["ip"]))
    try:
        limit = int(req.params.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "invalid_body", "limit must be a whole number") from None
    if not 1 <= limit <= config.limits.history_size:
        raise ApiError(400, "invalid_body", f"limit must be 1..{config.limits.history_size}")
    state = await client.read_entity_state(history_entity(spec.address))
    records = json_value(state.entity_state) if state.entity_exists else None
    records = list(reversed(records or []))[:limit]
    return _json(200, {"ip": spec.address, "records": records})


async def _export_history(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    config, caller = _authenticate(req)
    _, spec = authorize_read_ip(config, caller, parse_ip(req.route_params["ip"]))
    after, limit = parse_export_query(dict(req.params), config.limits.history_size)
    state = await client.read_entity_state(history_entity(spec.address))
    records = json_value(state.entity_state) if state.entity_exists else None
    page = export_page(list(records or []), after, limit)
    headers: dict[str, str] = {}
    if page.next_after is not None:
        # RFC 8288: the next page, relative to this one.
        query = urllib.parse.urlencode({"after": page.next_after, "limit": limit})
        headers["Link"] = f'</api/v1/ips/{spec.address}/history/export?{query}>; rel="next"'
    body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in page.records)
    return func.HttpResponse(
        body, status_code=200, mimetype="application/x-ndjson", headers=headers
    )


# -- helpers ------------------------------------------------------------------


def _input_of(status: Any) -> MoveRequest | None:
    data = json_value(status.input_)
    if not isinstance(data, dict):
        return None
    try:
        return MoveRequest.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def _epoch_iso(value: float | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat().replace("+00:00", "Z")


def _accepted(
    request_id: str,
    ip: str,
    action: Action,
    status: RequestStatus,
    record: dict[str, Any] | None,
) -> func.HttpResponse:
    url = f"/api/v1/requests/{request_id}"
    body: dict[str, Any] = {
        "requestId": request_id,
        "ip": ip,
        "action": str(action),
        "status": str(status),
        "statusUrl": url,
    }
    if record is not None:
        body["record"] = record
    return _json(200 if status.finished else 202, body, {"Location": url})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, mimetype="application/json", headers=headers
    )


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return _json(status, {"error": {"code": code, "message": message}}, headers)
