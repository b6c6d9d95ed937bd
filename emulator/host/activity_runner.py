"""Run one activity work item and report its result to the orchestration."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .catalog import FunctionCatalog
from .history import EventType, event, utc_now
from .invoker import Invoker
from .store import ActivityWorkItem, DurableStore, EpisodeCommit

__all__ = ["ActivityRunner"]

log = logging.getLogger("emulator.host.activity")


class ActivityRunner:
    """Invokes activity functions in the worker and records TaskCompleted or TaskFailed."""

    def __init__(self, store: DurableStore, catalog: FunctionCatalog, invoker: Invoker) -> None:
        self._store = store
        self._catalog = catalog
        self._invoker = invoker

    def run(self, item: ActivityWorkItem) -> None:
        """Run the activity and commit TaskCompleted or TaskFailed, removing the work item."""
        instance = self._store.get_instance(item.instance_id)
        commit = EpisodeCommit(completed_activity_id=item.id)
        if instance is None or instance.execution_id != item.execution_id:
            # The orchestration was purged, terminated or continued as new: drop it.
            self._store.commit(commit)
            return
        if instance.runtime_status in ("Completed", "Failed", "Terminated"):
            self._store.commit(commit)
            return
        started = time.monotonic()
        result = self._invoke(item)
        log.info(
            "activity %s of %s task %d took %.3fs",
            item.name,
            item.instance_id,
            item.task_id,
            time.monotonic() - started,
        )
        commit.new_messages.append((item.instance_id, item.execution_id, result, 0.0))
        self._store.commit(commit)

    def _invoke(self, item: ActivityWorkItem) -> dict[str, Any]:
        function = self._catalog.activity(item.name)
        if function is None:
            return _failed(
                item,
                f"The function '{item.name}' doesn't exist, is disabled, "
                "or is not an activity function.",
                "",
            )
        outcome = self._invoker.activity(function, item.instance_id, item.input)
        if not outcome.ok:
            # The worker reports "Type: message"; the extension makes it the
            # TaskFailed reason (after a space) and serializes the .NET
            # exception that wraps it into Details.
            message = f" {outcome.error}"
            details = json.dumps(
                {
                    "$type": "System.Exception, System.Private.CoreLib",
                    "ClassName": "System.Exception",
                    "Message": message,
                    "StackTraceString": outcome.stack_trace,
                }
            )
            return _failed(item, f"Activity function '{item.name}' failed: {message}", details)
        return event(
            EventType.TASK_COMPLETED,
            utc_now(),
            TaskScheduledId=item.task_id,
            Result=outcome.text(),
        )


def _failed(item: ActivityWorkItem, reason: str, details: str) -> dict[str, Any]:
    return event(
        EventType.TASK_FAILED,
        utc_now(),
        TaskScheduledId=item.task_id,
        Reason=reason,
        Details=details,
    )
