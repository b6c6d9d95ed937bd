"""Run a batch of operations on one entity with the out-of-process entity protocol.

The host sends ``{"self": {"name", "key"}, "state", "exists", "batch": [{"name",
"input"}]}`` and gets back ``{"entityExists", "entityState", "results": [{"isError",
"result", "duration", "startTime"}], "signals"}``. Each result of a call (not a
signal) goes back to the calling orchestration as an ``EventRaised`` named by the
request id, carrying the response message ``{"result"[, "exceptionType": "Error"]}``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .catalog import FunctionCatalog
from .history import EventType, event, utc_now
from .invoker import Invoker
from .store import DurableStore, EpisodeCommit

__all__ = ["MAX_BATCH", "EntityRunner", "split_entity_id"]

log = logging.getLogger("emulator.host.entity")

MAX_BATCH = 100


def split_entity_id(entity_id: str) -> tuple[str, str]:
    """``@name@key`` → (name, key)."""
    _, name, key = entity_id.split("@", 2)
    return name, key


class EntityRunner:
    """Processes the queued operations of one entity at a time."""

    def __init__(self, store: DurableStore, catalog: FunctionCatalog, invoker: Invoker) -> None:
        self._store = store
        self._catalog = catalog
        self._invoker = invoker

    def run_batch(self, entity_id: str) -> None:
        """Run the entity's visible operations (up to MAX_BATCH) and commit the outcome."""
        messages = self._store.visible_messages(entity_id, time.time())[:MAX_BATCH]
        if not messages:
            return
        name, key = split_entity_id(entity_id)
        exists, state = self._store.get_entity_state(entity_id)
        requests = [m.body["request"] for m in messages]
        commit = EpisodeCommit(consumed_message_ids=[m.id for m in messages])
        function = self._catalog.entity(name)
        if function is None:
            error = f"The function '{name}' doesn't exist, is disabled, or is not an entity."
            results = [{"isError": True, "result": json.dumps(error)} for _ in requests]
        else:
            # The extension hands each operation's serialized input over as a JSON
            # string (so the SDK decodes twice: json.loads, then df_loads); an
            # operation without input gets null, as in Azure.
            batch = [
                {
                    "name": r["op"],
                    "input": None if r.get("input") is None else json.dumps(r["input"]),
                    "isSignal": bool(r.get("signal")),
                }
                for r in requests
            ]
            context = {
                "self": {"name": name, "key": key},
                "state": state,
                "exists": exists,
                "batch": batch,
            }
            try:
                outcome = self._invoker.entity(function, json.dumps(context))
                if not outcome.ok:
                    raise RuntimeError(outcome.error)
                answer = json.loads(outcome.text() or "null")
                results = answer["results"]
                if answer.get("entityExists"):
                    commit.entity_state = (entity_id, answer.get("entityState"))
                else:
                    commit.entity_state = (entity_id, None)
            except Exception as exc:
                # The whole batch failed (the SDK raises for protocol errors):
                # state is unchanged and every caller gets the error.
                log.warning("entity %s batch failed: %s", entity_id, exc)
                results = [{"isError": True, "result": json.dumps(str(exc))} for _ in requests]
        for request, result in zip(requests, results, strict=True):
            if request.get("signal") or not request.get("parent"):
                continue
            response: dict[str, Any] = {"result": result.get("result")}
            if result.get("isError"):
                response["exceptionType"] = "Error"
            commit.new_messages.append(
                (
                    request["parent"],
                    request.get("parentExecution"),
                    event(
                        EventType.EVENT_RAISED,
                        utc_now(),
                        Name=request["id"],
                        Input=json.dumps(response),
                    ),
                    0.0,
                )
            )
        self._store.commit(commit)
