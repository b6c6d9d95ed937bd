"""Turning an HTTP request into a validated move request, or a clear 4xx."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .access import ApiError, MoveGrant
from .config import Limits
from .records import Action, MoveRequest, RequestLimits, iso, parse_iso
from .tokens import Caller

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "MoveBody",
    "build_move_request",
    "is_retry_of",
    "parse_ip",
    "parse_move_body",
    "parse_request_id",
]

MAX_BODY_BYTES = 16 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CONTEXT_KEYS = frozenset({"event", "server", "group", "resource"})
_CONTEXT_VALUE_MAX = 256


@dataclass(frozen=True)
class MoveBody:
    """The fields of an acquire/release body."""

    request_id: str | None = None
    deadline: dt.datetime | None = None
    context: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    force: bool = False


def parse_ip(text: str) -> str:
    """The IPv4 address in canonical form; ApiError(400, invalid_ip) otherwise."""
    try:
        return str(ipaddress.IPv4Address(text))
    except (ipaddress.AddressValueError, ValueError):
        raise ApiError(400, "invalid_ip", f"{text[:64]!r} is not an IPv4 address") from None


def parse_request_id(text: str) -> str:
    """A request id as the API accepts it; ApiError(400, invalid_request_id) otherwise."""
    if not _REQUEST_ID.fullmatch(text):
        raise ApiError(
            400, "invalid_request_id", "requestId must be 1-64 characters of A-Z a-z 0-9 . _ : -"
        )
    return text


def parse_move_body(raw: bytes) -> MoveBody:
    """Validate an acquire/release body (may be empty). Raises ApiError."""
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return MoveBody()
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None
    except ValueError as exc:  # bad JSON, bad UTF-8, an integer too long to convert
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = set(data) - {"requestId", "deadline", "context", "target", "force"}
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown fields: {', '.join(sorted(unknown))}")
    request_id = data.get("requestId")
    if request_id is not None:
        if not isinstance(request_id, str):
            raise ApiError(400, "invalid_request_id", "requestId must be a string")
        parse_request_id(request_id)
    deadline = None
    if data.get("deadline") is not None:
        if not isinstance(data["deadline"], str):
            raise ApiError(400, "invalid_deadline", "deadline must be an RFC 3339 time string")
        try:
            deadline = parse_iso(data["deadline"])
        except ValueError:
            raise ApiError(
                400, "invalid_deadline", "deadline must be an RFC 3339 time with a zone"
            ) from None
    target = data.get("target")
    if target is not None and not isinstance(target, str):
        raise ApiError(400, "invalid_body", "target must be a member name")
    force = data.get("force", False)
    if not isinstance(force, bool):
        raise ApiError(400, "invalid_body", "force must be true or false")
    return MoveBody(request_id, deadline, _parse_context(data.get("context")), target, force)


def _parse_context(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_body", "context must be an object")
    context = {}
    for key, value in raw.items():
        if key not in _CONTEXT_KEYS:
            raise ApiError(
                400, "invalid_body", f"context.{key} is not one of {sorted(_CONTEXT_KEYS)}"
            )
        if not isinstance(value, str) or len(value) > _CONTEXT_VALUE_MAX:
            raise ApiError(
                400, "invalid_body", f"context.{key} must be a string of at most 256 characters"
            )
        context[key] = value
    return context


def build_move_request(
    action: Action,
    grant: MoveGrant,
    caller: Caller,
    body: MoveBody,
    now: dt.datetime,
    limits: Limits,
    new_request_id: str,
) -> MoveRequest:
    """The orchestration's input. The deadline defaults to now + the default and is
    capped at now + the maximum; a deadline already past is refused (nothing queued).
    Only an operator may ``force`` a move (take the IP from a NIC that is not a
    member's)."""
    if body.force and not grant.by_operator:
        raise ApiError(403, "forbidden", "only operators may force a move")
    latest = now + dt.timedelta(seconds=limits.max_deadline_seconds)
    deadline = body.deadline or now + dt.timedelta(seconds=limits.default_deadline_seconds)
    if deadline <= now:
        raise ApiError(400, "deadline_passed", f"the deadline {iso(deadline)} has already passed")
    deadline = min(deadline, latest)
    return MoveRequest(
        request_id=body.request_id or new_request_id,
        action=action,
        ip=grant.ip.address,
        ip_config_name=grant.ip.ip_config_name,
        cluster=grant.cluster.name,
        subscription_id=grant.cluster.subscription_id,
        resource_group=grant.cluster.resource_group,
        member=grant.target.name,
        vm_id=grant.target.vm_id,
        caller_principal=caller.principal_id,
        by_operator=grant.by_operator,
        created_at=iso(now),
        deadline=iso(deadline),
        context=body.context,
        limits=RequestLimits(
            lock_lease_seconds=limits.lock_lease_seconds,
            lock_poll_seconds=limits.lock_poll_seconds,
            history_size=limits.history_size,
            max_pending_per_caller=limits.max_pending_per_caller,
            split_brain_window_seconds=limits.split_brain_window_seconds,
        ),
        member_vm_ids=tuple(m.vm_id for m in grant.cluster.members),
        force=body.force,
        member_nic_ids={m.vm_id: m.nic_id for m in grant.cluster.members if m.nic_id},
    )


def is_retry_of(earlier: MoveRequest, action: Action, grant: MoveGrant, caller: Caller) -> bool:
    """Whether a POST reusing ``earlier``'s request id asks for the same thing.

    Deadline and context may differ between a request and its retry; what the
    request does (action, IP, whose NIC) and who asked may not.
    """
    return (
        earlier.action == action
        and earlier.ip == grant.ip.address
        and earlier.member == grant.target.name
        and earlier.caller_principal == caller.principal_id
    )
