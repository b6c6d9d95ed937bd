"""History events in the JSON shape the Durable extension sends to out-of-process workers.

Field names are the extension's (PascalCase, as DurableTask.Core serializes
``HistoryEvent``); ``EventType`` numbers are DurableTask.Core's ``EventType``.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum
from typing import Any

__all__ = ["EventType", "event", "format_time", "parse_time", "utc_now"]


class EventType(IntEnum):
    """DurableTask.Core's EventType, as the SDK's HistoryEventType mirrors it."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_INSTANCE_CREATED = 7
    SUB_ORCHESTRATION_INSTANCE_COMPLETED = 8
    SUB_ORCHESTRATION_INSTANCE_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    """ISO 8601 with a Z suffix and microseconds, as the extension writes timestamps."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp (``Z`` or offset); naive ones are taken as UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def event(
    kind: EventType, moment: dt.datetime, event_id: int = -1, **fields: Any
) -> dict[str, Any]:
    """One history event: the common fields plus the event type's own."""
    body: dict[str, Any] = {
        "EventType": int(kind),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_time(moment),
    }
    body.update(fields)
    return body
