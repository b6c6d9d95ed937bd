"""The app's functions as the worker indexed them, arranged the way the host dispatches.

The host does not import the app: Microsoft's worker indexes it and answers
FunctionsMetadata with each function's id and raw bindings (JSON). The host
routes HTTP requests, orchestrations, activities and entities from that, and
reads each timer's schedule (a function whose schedule the timer extension
would not accept fails indexing).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .schedules import Schedule, monitor_is_disabled, parse_timer_schedule

__all__ = [
    "FunctionCatalog",
    "HttpFunction",
    "IndexedFunction",
    "TimerFunction",
    "build_catalog",
    "compile_route",
]


@dataclass
class IndexedFunction:
    """One function of the app: its name, the worker's id for it, its trigger and bindings."""

    name: str
    function_id: str
    trigger_type: str
    trigger_name: str
    bindings: list[dict[str, Any]]

    @property
    def input_bindings(self) -> list[dict[str, Any]]:
        """Bindings the host supplies on each invocation (trigger and inputs)."""
        return [b for b in self.bindings if str(b.get("direction", "")).lower() == "in"]


@dataclass
class HttpFunction:
    """An HTTP-triggered function with its compiled route."""

    function: IndexedFunction
    route: str
    methods: frozenset[str]
    auth_level: str
    pattern: re.Pattern[str]


@dataclass
class TimerFunction:
    """A timer-triggered function with its schedule, as the timer extension reads the binding.

    ``use_monitor`` is already off when the extension would turn it off (a
    sub-minute schedule).
    """

    function: IndexedFunction
    expression: str
    schedule: Schedule
    run_on_startup: bool
    use_monitor: bool

    @property
    def timer_name(self) -> str:
        """The listener's name (``{type}.{method}`` of the host's generated ``Host.Functions``)."""
        return f"Host.Functions.{self.function.name}"


@dataclass
class FunctionCatalog:
    """The app's functions, indexed the way the host dispatches to them."""

    http: list[HttpFunction] = field(default_factory=list)
    orchestrators: dict[str, IndexedFunction] = field(default_factory=dict)
    activities: dict[str, IndexedFunction] = field(default_factory=dict)
    entities: dict[str, IndexedFunction] = field(default_factory=dict)
    timers: list[TimerFunction] = field(default_factory=list)

    def orchestrator(self, name: str) -> IndexedFunction | None:
        """Orchestrator by name; function names are case-insensitive in Azure Functions."""
        return self.orchestrators.get(name.lower())

    def activity(self, name: str) -> IndexedFunction | None:
        """Activity by name, case-insensitively."""
        return self.activities.get(name.lower())

    def entity(self, name: str) -> IndexedFunction | None:
        """Entity by name, case-insensitively."""
        return self.entities.get(name.lower())

    def match_http(self, path: str) -> list[tuple[HttpFunction, dict[str, str]]]:
        """HTTP functions whose route matches ``path`` (below /api/), with route params."""
        found = []
        for fn in self.http:
            m = fn.pattern.fullmatch(path)
            if m:
                params = {k: v for k, v in m.groupdict().items() if v is not None}
                found.append((fn, params))
        return found


def build_catalog(
    functions: Iterable[Any], settings: Mapping[str, str] | None = None
) -> FunctionCatalog:
    """Arrange the worker's function metadata (``RpcFunctionMetadata``) for dispatch.

    ``settings`` are the app settings that ``%NAME%`` in a timer's schedule
    refers to. Raises ValueError for a trigger the host does not emulate and
    for a timer schedule the timer extension would refuse.
    """
    catalog = FunctionCatalog()
    for fn in functions:
        bindings = [json.loads(raw) for raw in fn.raw_bindings]
        trigger = next(b for b in bindings if b["type"].lower().endswith("trigger"))
        indexed = IndexedFunction(
            name=fn.name,
            function_id=fn.function_id,
            trigger_type=trigger["type"],
            trigger_name=trigger["name"],
            bindings=bindings,
        )
        kind = trigger["type"]
        if kind == "httpTrigger":
            catalog.http.append(_http_function(indexed, trigger))
        elif kind == "orchestrationTrigger":
            catalog.orchestrators[(trigger.get("orchestration") or indexed.name).lower()] = indexed
        elif kind == "activityTrigger":
            catalog.activities[(trigger.get("activity") or indexed.name).lower()] = indexed
        elif kind == "entityTrigger":
            catalog.entities[(trigger.get("entityName") or indexed.name).lower()] = indexed
        elif kind == "timerTrigger":
            catalog.timers.append(_timer_function(indexed, trigger, settings or {}))
        else:
            raise ValueError(f"function {indexed.name!r}: trigger {kind!r} is not supported")
    # Literal segments win over parameters, as in ASP.NET routing.
    catalog.http.sort(key=lambda f: _route_precedence(f.route))
    return catalog


def _http_function(indexed: IndexedFunction, trigger: dict[str, Any]) -> HttpFunction:
    route = (trigger.get("route") or indexed.name).strip("/")
    methods = frozenset(m.upper() for m in (trigger.get("methods") or []))
    auth_level = str(trigger.get("authLevel") or "function").lower()
    return HttpFunction(
        function=indexed,
        route=route,
        methods=methods,
        auth_level=auth_level,
        pattern=compile_route(route),
    )


def _timer_function(
    indexed: IndexedFunction, trigger: dict[str, Any], settings: Mapping[str, str]
) -> TimerFunction:
    """The timer binding as the host's TimerTriggerScriptBinding and the extension read it."""
    expression = str(trigger.get("schedule") or "")
    try:
        schedule = parse_timer_schedule(expression, settings)
    except ValueError as exc:
        # The host's FunctionIndexingException wording; Azure's host then starts
        # without this function (AllowPartialHostStartup), the local host refuses the app.
        raise ValueError(f"Error indexing method 'Functions.{indexed.name}': {exc}") from None
    use_monitor = _flag(trigger.get("useMonitor"), default=True)
    if use_monitor and monitor_is_disabled(schedule, dt.datetime.now(dt.UTC)):
        use_monitor = False
    return TimerFunction(
        function=indexed,
        expression=expression,
        schedule=schedule,
        run_on_startup=_flag(trigger.get("runOnStartup"), default=False),
        use_monitor=use_monitor,
    )


def _flag(value: Any, default: bool) -> bool:
    """A boolean binding property: JSON true/false, or its text."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?=]+)?(\?)?\}")


def compile_route(route: str) -> re.Pattern[str]:
    """Compile an Azure Functions route template (``a/{id}/{*rest}``, ``{x?}``)."""
    out = []
    pos = 0
    for m in _PARAM.finditer(route):
        out.append(re.escape(route[pos : m.start()]))
        catch_all, name, optional = m.group(1), m.group(2), m.group(3)
        body = ".*" if catch_all else "[^/]+"
        group = f"(?P<{name}>{body})"
        if optional or catch_all:
            # An optional last segment may be absent together with its slash.
            if out and out[-1].endswith("/"):
                out[-1] = out[-1][:-1]
                group = f"(?:/{group})?"
            else:
                group += "?"
        out.append(group)
        pos = m.end()
    out.append(re.escape(route[pos:]))
    return re.compile("".join(out), re.IGNORECASE)


def _route_precedence(route: str) -> tuple[int, ...]:
    return tuple(1 if "{" in seg else 0 for seg in route.split("/"))
