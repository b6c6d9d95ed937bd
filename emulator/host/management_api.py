"""The Durable extension's HTTP management API.

Served twice, as in the host: under ``/durabletask/`` on the local RPC port
that ``DurableOrchestrationClient`` calls (``rpcBaseUrl``, no key), and under
``/runtime/webhooks/durabletask/`` on the public port, where a system or master
key is required (the URLs of ``create_check_status_response``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .catalog import FunctionCatalog
from .dispatcher import Dispatcher
from .entity_runner import split_entity_id
from .history import EventType, event, parse_time, utc_now
from .orchestration_runner import (
    FINISHED_STATES,
    execution_started_event,
    new_instance_record,
)
from .store import DurableStore, InstanceRecord
from .versioning import versioning_from_host_json

__all__ = ["HubSettings", "ManagementApi"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RUNNING_STATES = frozenset({"Pending", "Running"})
# The statuses DurableTask.AzureStorage lets a purge by filter select
# (AzureTableTrackingStore.PurgeInstanceHistoryAsync); any other is dropped.
PURGEABLE_STATES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
MAX_INSTANCE_ID_LENGTH = 256


class HubSettings:
    """Task hub settings from host.json's ``extensions.durableTask``.

    Raises ValueError for versioning settings the extension would refuse.
    """

    def __init__(
        self,
        hub_name: str,
        overridable_states: str = "NonRunningStates",
        default_version: Any = None,
        version_match_strategy: Any = "CurrentOrOlder",
        version_failure_strategy: Any = "Reject",
    ) -> None:
        self.hub_name = hub_name
        if overridable_states.lower() == "anystate":
            self.overridable = frozenset({"Pending", "Running", *FINISHED_STATES})
        else:
            self.overridable = frozenset(FINISHED_STATES)
        self.versioning = versioning_from_host_json(
            default_version, version_match_strategy, version_failure_strategy
        )


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
        r.add_delete(prefix + "instances", wrap(self.purge_by_filter))
        r.add_delete(prefix + "instances/", wrap(self.purge_by_filter))
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
        # ?version= (ext 3.1+, PR #3213), else host.json defaultVersion, else "".
        version = self._hub.versioning.new_instance_version(request.query.get("version"))
        record = new_instance_record(instance_id, name, input_json, version)
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
        # As the extension: a time that does not parse is no filter.
        created_from = _query_time(q.get("createdTimeFrom"))
        created_to = _query_time(q.get("createdTimeTo"))
        found = []
        for instance in self._store.list_instances():
            if wanted and instance.runtime_status not in wanted:
                continue
            if prefix and not instance.instance_id.startswith(prefix):
                continue
            created = parse_time(instance.created_time)
            if created_from and created < created_from:
                continue
            if created_to and created > created_to:
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

    async def purge_by_filter(self, request: web.Request) -> web.Response:
        """Delete the instances created in a time window, optionally of some statuses.

        As the extension's ``HandleDeleteHistoryWithFiltersRequestAsync`` on Azure
        Storage: ``createdTimeFrom`` is required (400 otherwise), ``createdTimeTo``
        defaults to now, both inclusive; ``runtimeStatus`` (comma-separated,
        repeatable, case-sensitive names or numbers; unknown ones ignored) keeps
        only Completed, Failed, Terminated and Canceled, and when none of those
        remains **every status is purged**, running instances and entities
        included. 200 ``{"instancesDeleted": N}``, 404 when nothing matched.
        """
        q = request.query
        created_from = _query_time(q.get("createdTimeFrom"))
        if created_from is None:
            return web.json_response(
                "Please provide value for 'createdTimeFrom' parameter.", status=400
            )
        created_to = _query_time(q.get("createdTimeTo")) or utc_now()
        requested = {
            status
            for value in q.getall("runtimeStatus", [])
            for status in _orchestration_statuses(value)
        }
        statuses = frozenset(requested & PURGEABLE_STATES) or None
        deleted = self._store.purge_instances(created_from, created_to, statuses)
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
        # As the extension: no "historyEvents" key unless asked for, nor for a Pending instance.
        if show_history and instance.runtime_status != "Pending":
            body["historyEvents"] = _history_for_api(
                self._store.get_history(instance.instance_id), show_input, show_history_output
            )
        return body


# DurableTask.Core's OrchestrationStatus numbers, as ExecutionCompleted stores them.
_ORCHESTRATION_STATUS = {
    0: "Running",
    1: "Completed",
    2: "ContinuedAsNew",
    3: "Failed",
    4: "Canceled",
    5: "Terminated",
    6: "Pending",
    7: "Suspended",
}
_FOLDED = {
    EventType.TASK_SCHEDULED: (EventType.TASK_COMPLETED, EventType.TASK_FAILED),
    EventType.SUB_ORCHESTRATION_INSTANCE_CREATED: (
        EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
        EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
    ),
}
_COMPLETIONS = {done: started for started, dones in _FOLDED.items() for done in dones}
# Members of DurableTask.Core's ExecutionStartedEvent that the emulator does not
# use; the extension's JSON carries them as null.
_EXECUTION_STARTED_NULLS = ("Correlation", "ParentTraceContext", "ScheduledStartTime", "Generation")


def _history_for_api(
    events: list[dict[str, Any]], show_input: bool = True, show_output: bool = False
) -> list[dict[str, Any]]:
    """History as the extension's status API shows it (``DurableClient``'s transform).

    Event types by name; no ``EventId``/``IsPlayed``; no OrchestratorStarted/
    Completed; a TaskScheduled (SubOrchestrationInstanceCreated) whose completion
    or failure is in the history is folded into it (``ScheduledTime``,
    ``FunctionName``, ``Input``) and left out, a pending one stays; ``Result``
    only with ``showHistoryOutput``, parsed; ``Input`` (raw JSON text) only with
    ``showInput``.
    """
    scheduled: dict[tuple[EventType, int], tuple[int, dict[str, Any]]] = {}
    folded: set[int] = set()
    shown: list[tuple[int, dict[str, Any]]] = []
    for index, e in enumerate(events):
        kind = EventType(e["EventType"])
        if kind in (EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED):
            continue
        dropped = {"EventType", "EventId", "IsPlayed", "Timestamp"}
        if not show_input:
            dropped.add("Input")
        if kind in _FOLDED:
            dropped.add("Version")
        elif kind in _COMPLETIONS:
            dropped.add("TaskScheduledId")
        elif kind == EventType.TIMER_FIRED:
            dropped.add("TimerId")
        elif kind == EventType.EXECUTION_STARTED:
            dropped |= {"Name", "OrchestrationInstance", "ParentInstance", "Version", "Tags"}
        item: dict[str, Any] = {"EventType": _pascal(kind.name)}
        item.update((k, v) for k, v in e.items() if k not in dropped)
        if kind == EventType.EXECUTION_STARTED:
            for key in _EXECUTION_STARTED_NULLS:
                item.setdefault(key, None)
        if kind in (EventType.EXECUTION_COMPLETED, *_COMPLETIONS) and "Result" in item:
            if show_output:
                item["Result"] = _loads(item["Result"])
            else:
                del item["Result"]
        if kind == EventType.EXECUTION_COMPLETED:
            status = item.get("OrchestrationStatus")
            item["OrchestrationStatus"] = _ORCHESTRATION_STATUS.get(status, status)
            item.setdefault("FailureDetails", None)
        item["Timestamp"] = e["Timestamp"]
        if kind == EventType.EXECUTION_STARTED:
            item["FunctionName"] = e.get("Name")
        elif kind in _FOLDED:
            scheduled[(kind, e.get("EventId", -1))] = (index, e)
        elif kind in _COMPLETIONS:
            origin = scheduled.get((_COMPLETIONS[kind], e.get("TaskScheduledId", -2)))
            if origin is not None:
                folded.add(origin[0])
                item["ScheduledTime"] = _scheduled_time(origin[1]["Timestamp"])
                item["FunctionName"] = origin[1].get("Name")
                if show_input:
                    item["Input"] = origin[1].get("Input")
        shown.append((index, item))
    return [item for index, item in shown if index not in folded]


def _scheduled_time(timestamp: str) -> str:
    """A stored ``Timestamp`` as the extension writes ``ScheduledTime``.

    It reads the TaskScheduled timestamp into a local-time ``DateTime`` and
    Newtonsoft writes it with the machine's UTC offset and no trailing zeros
    in the fraction; Azure's hosts run on UTC, hence ``+00:00``.
    """
    moment = parse_time(timestamp).astimezone(dt.UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "+00:00"


def _query_time(value: str | None) -> dt.datetime | None:
    """A date-time query parameter (ISO 8601; no offset means UTC), or None when it does not parse.

    The extension uses .NET's ``DateTime.TryParse``, which also takes
    culture-specific forms; ISO 8601 is what the SDKs send.
    """
    if not value:
        return None
    try:
        return parse_time(value.strip())
    except ValueError:
        return None


def _orchestration_statuses(value: str) -> list[str]:
    """``Enum.TryParse<OrchestrationStatus>`` over a comma-separated list: names or numbers."""
    found = []
    for part in value.split(","):
        part = part.strip()
        if part.lstrip("-").isdigit():
            status = _ORCHESTRATION_STATUS.get(int(part))
            if status is not None:
                found.append(status)
        elif part in _ORCHESTRATION_STATUS.values():
            found.append(part)
    return found


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
