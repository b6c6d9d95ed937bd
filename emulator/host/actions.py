"""The orchestrator's answer, as the out-of-process protocol carries it.

An orchestrator invocation returns ``{isDone, actions, output, error,
customStatus, schemaVersion}``; on failure the worker raises, and the message
carries the same JSON after ``$OutOfProcData$:``. ``actions`` holds every
action the orchestrator has scheduled in this execution so far (replayed ones
too), as a list of lists (schema V1: one inner list per ``yield``) or one list
whose compound ``WhenAll``/``WhenAny`` actions nest their children (V2+).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = ["ActionType", "OrchestratorAnswer", "flatten_actions", "parse_answer"]

_OUT_OF_PROC_LABEL = "$OutOfProcData$:"


class ActionType(IntEnum):
    """The SDK's ActionType numbers."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


@dataclass
class OrchestratorAnswer:
    """What one orchestrator invocation decided."""

    is_done: bool
    actions: list[dict[str, Any]] = field(default_factory=list)
    output: Any = None
    error: str | None = None
    custom_status: Any = None


def flatten_actions(actions: list[Any]) -> list[dict[str, Any]]:
    """Leaf actions in scheduling order (the order the SDK numbers its tasks in)."""
    flat: list[dict[str, Any]] = []
    for item in actions:
        if isinstance(item, list):
            flat.extend(flatten_actions(item))
        elif item.get("actionType") in (ActionType.WHEN_ALL, ActionType.WHEN_ANY):
            flat.extend(flatten_actions(item.get("compoundActions") or []))
        else:
            flat.append(item)
    return flat


def parse_answer(returned: str | None, raised: str | None) -> OrchestratorAnswer:
    """Interpret the orchestrator's return value or the worker's message of what it raised.

    Raises ValueError when neither carries the protocol's JSON (the worker
    itself broke, not the orchestration).
    """
    if raised is not None:
        message = raised
        head, sep, data = message.partition("\n\n" + _OUT_OF_PROC_LABEL)
        if not sep:
            # An exception outside the SDK's executor (e.g. bad input JSON):
            # the orchestration fails with that message, as in the host.
            return OrchestratorAnswer(is_done=False, error=message or "Exception")
        state = json.loads(data)
        return OrchestratorAnswer(
            is_done=False,
            actions=flatten_actions(state.get("actions") or []),
            error=state.get("error") or head,
            custom_status=state.get("customStatus"),
        )
    if returned is None:
        raise ValueError("orchestrator returned nothing")
    state = json.loads(returned) if isinstance(returned, str) else returned
    return OrchestratorAnswer(
        is_done=bool(state.get("isDone")),
        actions=flatten_actions(state.get("actions") or []),
        output=state.get("output"),
        error=state.get("error"),
        custom_status=state.get("customStatus"),
    )
