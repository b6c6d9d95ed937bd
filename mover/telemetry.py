"""One structured log line per finished request: what alerts and audit queries read.

The line is ``ipmover.move {json}`` at INFO, from the move orchestration (once, never
from a replay). The fields live in the message itself because Microsoft's Python
worker sends only a log record's formatted message, level and logger name to the
host (``RpcLog``: message, category, level, log category, invocation id;
azure-functions-python-worker ``workers/proxy_worker/dispatcher.py``, ``on_logging``):
``logging``'s ``extra`` never reaches Application Insights' ``customDimensions`` that
way. In Application Insights the line is a ``traces`` row whose ``message`` KQL reads
with ``parse_json(substring(message, 13))`` (docs/operations.md). The same fields go
into ``extra`` as well, for a handler that does carry them (OpenTelemetry's logging
handler turns record attributes into ``customDimensions``).

Nothing secret is in it: no token, no key, no header; caller-sent context is limited
to the cluster event, and ``json.dumps`` escapes every control and non-ASCII
character, so a field cannot end the line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ErrorInfo
from .records import parse_iso

__all__ = ["MOVE_EVENT", "ArmTally", "MoveTelemetry", "is_throttling", "move_telemetry"]

# The message prefix of the per-move line; queries and alert rules match on it.
MOVE_EVENT = "ipmover.move"

# ARM's codes for throttling, when an answer carries no HTTP status (an async
# operation that failed with it).
_THROTTLING_CODES = frozenset({"SubscriptionRequestsThrottled", "TooManyRequests"})


def is_throttling(error: ErrorInfo) -> bool:
    """Whether ARM refused the call for its request rate (429)."""
    return error.status == 429 or error.code in _THROTTLING_CODES


@dataclass
class ArmTally:
    """The ARM work of one request, counted by the orchestration (replays count alike).

    Counts are activity calls, not HTTP requests: a read of the members' NICs is one
    call however many NICs it reads, a wait for an update one call however often it polls.
    """

    reads: int = 0
    writes: int = 0
    waits: int = 0
    retries: int = 0
    throttled: int = 0

    def count_failure(self, error: ErrorInfo) -> None:
        """A failed attempt that is retried or ends the step."""
        self.retries += 1
        if is_throttling(error):
            self.throttled += 1


@dataclass(frozen=True)
class MoveTelemetry:
    """The fields of one ``ipmover.move`` line (camelCase in JSON, as the API's records)."""

    request_id: str
    ip: str
    cluster: str
    action: str
    outcome: str
    error_code: str | None
    member: str
    by_operator: bool
    force: bool
    event: str | None
    from_nics: list[str]
    to_nic: str | None
    unassigned: bool
    duration_seconds: float
    waited_seconds: float
    moved_seconds: float
    arm_reads: int
    arm_writes: int
    arm_waits: int
    arm_retries: int
    arm_throttled: int
    steps: int
    created_at: str
    finished_at: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: camelCase keys, in declaration order."""
        return {_camel(k): v for k, v in asdict(self).items()}

    def line(self) -> str:
        """The log message: ``ipmover.move`` and the fields as one line of JSON."""
        return f"{MOVE_EVENT} {json.dumps(self.to_dict(), separators=(',', ':'))}"

    def log_extra(self) -> dict[str, Any]:
        """The fields for ``logging``'s ``extra``: flat, primitive values only."""
        flat: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, list):
                value = ",".join(value)
            flat[f"ipmover_{key}"] = value
        return flat


def move_telemetry(record: dict[str, Any], tally: ArmTally, force: bool) -> MoveTelemetry:
    """The telemetry of a finished request from its audit record (``RequestRecord.to_api``)."""
    created = record["createdAt"]
    finished = record.get("finishedAt")
    locked = record.get("lockedAt")
    error = record.get("error") or {}
    context = record.get("context") or {}
    caller = record.get("caller") or {}
    return MoveTelemetry(
        request_id=record["requestId"],
        ip=record["ip"],
        cluster=record["cluster"],
        action=record["action"],
        outcome=record["status"],
        error_code=error.get("code"),
        member=caller.get("member", ""),
        by_operator=bool(caller.get("byOperator")),
        force=force,
        event=context.get("event"),
        from_nics=[_name(n) for n in record.get("fromNics") or []],
        to_nic=_name(record["toNic"]) if record.get("toNic") else None,
        unassigned=bool(record.get("unassigned")),
        duration_seconds=_seconds(created, finished),
        waited_seconds=_seconds(created, locked or finished),
        moved_seconds=_seconds(locked, finished) if locked else 0.0,
        arm_reads=tally.reads,
        arm_writes=tally.writes,
        arm_waits=tally.waits,
        arm_retries=tally.retries,
        arm_throttled=tally.throttled,
        steps=len(record.get("steps") or []),
        created_at=created,
        finished_at=finished,
    )


def _name(resource_id: str) -> str:
    """A NIC's name: its id's last segment (the id is in the audit record)."""
    return resource_id.rsplit("/", 1)[-1]


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
