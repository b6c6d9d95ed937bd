"""Run one activity work item and report its result to the orchestration."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from azure.functions import meta

from .app_loader import FunctionCatalog
from .history import EventType, event, utc_now
from .store import ActivityWorkItem, DurableStore, EpisodeCommit

__all__ = ["ActivityRunner"]

log = logging.getLogger("emulator.host.activity")


class ActivityRunner:
    """Invokes activity functions the way the worker does (converters in, converters out).

    Like the Python worker, coroutine functions run on the one event loop
    (``loop``), plain functions on worker threads; an activity may also have a
    durable client binding (``client_binding`` gives its JSON).
    """

    def __init__(
        self,
        store: DurableStore,
        catalog: FunctionCatalog,
        loop: asyncio.AbstractEventLoop,
        client_binding: Callable[[], dict[str, Any]],
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._loop = loop
        self._client_binding = client_binding

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
        converter = meta.get_binding_registry().get("activityTrigger")
        try:
            argument = converter.decode(
                meta.Datum(type="json", value=item.input if item.input is not None else "null"),
                trigger_metadata={},
            )
            kwargs: dict[str, Any] = {function.trigger_name: argument}
            for binding in function.bindings:
                if binding["type"] == "durableClient":
                    kwargs[binding["name"]] = json.dumps(self._client_binding())
            if function.is_async:
                future = asyncio.run_coroutine_threadsafe(function.handler(**kwargs), self._loop)
                value = future.result()
            else:
                value = function.handler(**kwargs)
            encoded = converter.encode(value, expected_type=None)
        except Exception as exc:
            # The worker reports "Type: message"; the extension makes it the
            # TaskFailed reason (after a space) and serializes the .NET
            # exception that wraps it into Details.
            message = f" {type(exc).__name__}: {exc}"
            details = json.dumps(
                {
                    "$type": "System.Exception, System.Private.CoreLib",
                    "ClassName": "System.Exception",
                    "Message": message,
                    "StackTraceString": "".join(traceback.format_exception(exc)),
                }
            )
            return _failed(item, f"Activity function '{item.name}' failed: {message}", details)
        return event(
            EventType.TASK_COMPLETED,
            utc_now(),
            TaskScheduledId=item.task_id,
            Result=encoded.value,
        )


def _failed(item: ActivityWorkItem, reason: str, details: str) -> dict[str, Any]:
    return event(
        EventType.TASK_FAILED,
        utc_now(),
        TaskScheduledId=item.task_id,
        Reason=reason,
        Details=details,
    )
