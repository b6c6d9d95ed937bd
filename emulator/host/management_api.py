"""The Durable extension's HTTP management API.

Served twice, as in the host: under ``/durabletask/`` on the local RPC port
that ``DurableOrchestrationClient`` calls (``rpcBaseUrl``, no key), and under
``/runtime/webhooks/durabletask/`` on the public port, where a system or master
key is required (the URLs of ``create_check_status_response``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .catalog import FunctionCatalog
from .dispatcher import Dispatcher
from .entity_runner import split_entity_id
from .history import EventType, event, utc_now
from .orchestration_runner import (
    FINISHED_STATES,
    execution_started_event,
    new_instance_record,
)
from .store import DurableStore, InstanceRecord

__all__ = ["HubSettings", "ManagementApi"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RUNNING_STATES = frozenset({"Pending", "Running"})
MAX_INSTANCE_ID_LENGTH = 256


class HubSettings:
    """Task hub settings the API needs (from host.json)."""

    def __init__(self, hub_name: str, overridable_states: str = "NonRunningStates") -> None:
        self.hub_name = hub_name
        if overridable_states.lower() == "anystate":
            self.overridable = frozenset({"Pending", "Running", *FINISHED_STATES})
        else:
            self.overridable = frozenset(FINISHED_STATES)


class ManagementApi:
    """Handlers of the management routes; URLs are built by ``urls``."""

    def __init__(
        self,
        store: DurableStore,
        catalog: FunctionCatalog,
        dispatcher: Dispatcher,
        hub: HubSettings,
        urls: Callable[[str], dict[str, str]],
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._dispatcher = dispatcher
        self._hub = hub
        self._urls = urls

    def add_routes(self, app: web.Application, prefix: str, guard: Handler | None = None) -> None:
        """Register every route under ``prefix``; ``guard`` wraps each for key checks."""

        def wrap(handler: Handler) -> Handler:
            if guard is None:
                return handler

            async def guarded(request: web.Request) -> web.StreamResponse:
                denied = await guard(request)
                return denied if denied is not None else await handler(request)

            return guarded

        r = app.router
        r.add_post(prefix + "orchestrators/{name}", wrap(self.start))
        r.add_post(prefix + "orchestrators/{name}/{instance_id}", wrap(self.start))
        r.add_get(prefix + "instances", wrap(self.list_instances))
        r.add_get(prefix + "instances/", wrap(self.list_instances))
        r.add_get(prefix + "instances/{instance_id}", wrap(self.get_status))
        r.add_delete(prefix + "instances/{instance_id}", wrap(self.purge))
        r.add_post(prefix + "instances/{instance_id}/raiseEvent/{event}", wrap(self.raise_event))
        r.add_post(prefix + "instances/{instance_id}/terminate", wrap(self.terminate))
        for verb in ("rewind", "suspend", "resume", "restart"):
            r.add_post(prefix + "instances/{instance_id}/" + verb, wrap(self.not_supported))
        r.add_get(prefix + "entities/{name}/{key}", wrap(self.read_entity))
        r.add_post(prefix + "entities/{name}/{key}", wrap(self.signal_entity))

    # -- orchestrations -----------------------------------------------------

    async def start(self, request: web.Request) -> web.Response:
        """Start an orchestration: 202 with the status payload.

        As in the extension: 400 for an unknown orchestrator or a bad instance
        id, 500 (``OrchestrationAlreadyExistsException``) when the id belongs to
        an instance in a state that may not be overridden.
        """
        name = request.match_info["name"]
        if self._catalog.orchestrator(name) is None:
            known = ", ".join(f"'{n}'" for n in sorted(self._catalog.orchestrators))
            return _error(
                400,
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                f"function. Additional info: The following are the known orchestrator "
                f"functions: {known}.",
                "System.ArgumentException",
            )
        instance_id = request.match_info.get("instance_id") or uuid.uuid4().hex
        problem = instance_id_problem(instance_id)
        if problem:
            return _error(400, problem, "System.ArgumentException")
        try:
            input_json = _serialized_input(await request.read())
        except ValueError as exc:
            return _error(400, str(exc), "System.ArgumentException")
        record = new_instance_record(instance_id, name, input_json)
        created = self._store.create_instance(
            record, execution_started_event(record), self._hub.overridable
        )
        if not created:
            existing = self._store.get_instance(instance_id)
            status = existing.runtime_status if existing else "Running"
            return _error(
                500,
                f"An Orchestration instance with the status {status} already exists.",
                "DurableTask.AzureStorage.Storage.OrchestrationAlreadyExistsException",
            )
        self._dispatcher.notify()
        urls = self._urls(instance_id)
        body = {k: v for k, v in urls.items() if k != "rewindPostUri"}
        return web.json_response(
            body,
            status=202,
            headers={"Location": urls["statusQueryGetUri"], "Retry-After": "10"},
        )

    async def get_status(self, request: web.Request) -> web.Response:
        """Status of one instance: 202 while running, 200 when ended, 404 when unknown."""
        instance = self._store.get_instance(request.match_info["instance_id"])
        if instance is None:
            return web.Response(status=404)
        q = request.query
        body = self._status_body(
            instance,
            show_input=_flag(q.get("showInput"), default=True),
            show_history=_flag(q.get("showHistory")),
            show_history_output=_flag(q.get("showHistoryOutput")),
        )
        status = 202 if instance.runtime_status in RUNNING_STATES else 200
        if instance.runtime_status == "Failed" and _flag(
            q.get("returnInternalServerErrorOnFailure")
        ):
            status = 500
        headers = {}
        if status == 202:
            headers["Location"] = str(request.url)
            headers["Retry-After"] = "5"
        return web.json_response(body, status=status, headers=headers)

    async def list_instances(self, request: web.Request) -> web.Response:
        """All instances, filtered by runtimeStatus, createdTimeFrom/To, instanceIdPrefix."""
        q = request.query
        wanted = {s for s in q.get("runtimeStatus", "").split(",") if s}
        prefix = q.get("instanceIdPrefix", "")
        created_from = q.get("createdTimeFrom")
        created_to = q.get("createdTimeTo")
        found = []
        for instance in self._store.list_instances():
            if wanted and instance.runtime_status not in wanted:
                continue
            if prefix and not instance.instance_id.startswith(prefix):
                continue
            if created_from and instance.created_time < created_from:
                continue
            if created_to and instance.created_time > created_to:
                continue
            found.append(
                self._status_body(instance, show_input=_flag(q.get("showInput"), default=True))
            )
        return web.json_response(found)

    async def raise_event(self, request: web.Request) -> web.Response:
        """Queue an external event: 202; 404 unknown instance; 410 instance ended.

        The event's data is the request body as JSON, unwrapped no further: the
        Python client double-encodes it, so orchestrators get a string, as in
        Azure (azure-functions-durable-python issue #295).
        """
        instance = self._store.get_instance(request.match_info["instance_id"])
        if instance is None:
            return web.Response(status=404)
        if instance.runtime_status in FINISHED_STATES:
            return web.Response(status=410)
        if request.content_type != "application/json":
            return _error(400, "Only application/json request content is supported")
        raw = await request.read()
        try:
            payload = json.dumps(json.loads(raw)) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "Invalid JSON content", "System.ArgumentException")
        body = event(
            EventType.EVENT_RAISED, utc_now(), Name=request.match_info["event"], Input=payload
        )
        self._store.enqueue_message(instance.instance_id, body)
        self._dispatcher.notify()
        return web.Response(status=202)

    async def terminate(self, request: web.Request) -> web.Response:
        """Terminate: 202; 404 unknown instance; 410 instance already ended."""
        instance = self._store.get_instance(request.match_info["instance_id"])
        if instance is None:
            return web.Response(status=404)
        if instance.runtime_status in FINISHED_STATES:
            return web.Response(status=410)
        reason = request.query.get("reason", "")
        body = event(EventType.EXECUTION_TERMINATED, utc_now(), Input=reason)
        self._store.enqueue_message(instance.instance_id, body)
        self._dispatcher.notify()
        return web.Response(status=202)

    async def purge(self, request: web.Request) -> web.Response:
        """Delete an ended instance and its history: 200 with the count, 404 otherwise."""
        deleted = self._store.purge_instance(request.match_info["instance_id"])
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted})

    async def not_supported(self, request: web.Request) -> web.Response:
        """Rewind, suspend, resume and restart are not emulated."""
        verb = request.path.rstrip("/").rsplit("/", 1)[-1]
        return _error(501, f"'{verb}' is not supported by the local host emulator")

    # -- entities -----------------------------------------------------------

    async def read_entity(self, request: web.Request) -> web.Response:
        """Entity state: 200 with the state, 404 when the entity does not exist."""
        entity_id = _entity_id(request)
        exists, state = self._store.get_entity_state(entity_id)
        if not exists:
            return web.Response(status=404)
        return web.json_response(json.loads(state) if state is not None else None)

    async def signal_entity(self, request: web.Request) -> web.Response:
        """Signal an operation (``?op=``) to an entity: 202."""
        op = request.query.get("op")
        if not op:
            return _error(400, "The 'op' query parameter is required.")
        try:
            payload = _serialized_input(await request.read())
        except ValueError as exc:
            return _error(400, str(exc))
        entity_id = _entity_id(request)
        split_entity_id(entity_id)
        message = {
            "request": {
                "id": str(uuid.uuid4()),
                "op": op,
                "signal": True,
                "input": payload,
                "parent": None,
            }
        }
        self._store.enqueue_message(entity_id, message)
        self._dispatcher.notify()
        return web.Response(status=202)

    # -- bodies ---------------------------------------------------------------

    def _status_body(
        self,
        instance: InstanceRecord,
        show_input: bool = True,
        show_history: bool = False,
        show_history_output: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": instance.name,
            "instanceId": instance.instance_id,
            "runtimeStatus": instance.runtime_status,
            "input": _loads(instance.input) if show_input else None,
            "customStatus": _loads(instance.custom_status),
            "output": _loads(instance.output),
            "createdTime": instance.created_time[:19] + "Z",
            "lastUpdatedTime": instance.last_updated_time[:19] + "Z",
        }
        if show_history:
            body["historyEvents"] = _history_for_api(
                self._store.get_history(instance.instance_id), show_history_output
            )
        return body


def _history_for_api(events: list[dict[str, Any]], with_output: bool) -> list[dict[str, Any]]:
    """History as the status API shows it: named event types, no replay markers."""
    shown = []
    for e in events:
        kind = EventType(e["EventType"])
        if kind in (EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED):
            continue
        item = {"EventType": _pascal(kind.name), "Timestamp": e["Timestamp"]}
        for key in ("Name", "FunctionName", "ScheduledTime", "FireAt", "Reason", "Details"):
            if e.get(key) is not None:
                item[key] = e[key]
        if kind == EventType.TASK_COMPLETED and with_output:
            item["Result"] = _loads(e.get("Result"))
        if kind == EventType.EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = (
                "Completed" if e.get("OrchestrationStatus") == 1 else ("Failed")
            )
            if with_output:
                item["Result"] = _loads(e.get("Result"))
        shown.append(item)
    return shown


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _serialized_input(raw: bytes) -> str | None:
    """The body as the JSON text the orchestrator will get.

    The Python client posts ``json.dumps(df_dumps(value))``: a JSON string that
    holds the serialized value; other callers post the value itself.
    """
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"The request body is not valid JSON: {exc}") from None
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except json.JSONDecodeError:
            pass
    return json.dumps(value)


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.lower() == "true"


def _entity_id(request: web.Request) -> str:
    return f"@{request.match_info['name'].lower()}@{request.match_info['key']}"


def instance_id_problem(instance_id: str) -> str | None:
    """Why the extension would refuse this instance id, or None."""
    if not instance_id.strip():
        return "Instance ID must not be empty."
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        return f"Instance ID must not exceed {MAX_INSTANCE_ID_LENGTH} characters."
    if instance_id.startswith("@"):
        return f"Orchestration instance ids must not start with @ ('{instance_id}')."
    if any(c in instance_id for c in "/\\?#") or any(ord(c) < 32 for c in instance_id):
        return f"Instance ID '{instance_id}' contains invalid characters."
    return None


def _error(status: int, detail: str, exception_type: str = "System.Exception") -> web.Response:
    """The extension's error body: a generic message plus the exception's."""
    message = (
        "One or more of the arguments submitted is incorrect"
        if status == 400
        else "Something went wrong while processing your request"
    )
    if status == 501:
        message = detail
    body = {"Message": message, "ExceptionMessage": detail, "ExceptionType": exception_type}
    return web.json_response(body, status=status)
