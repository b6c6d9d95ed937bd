"""Load a Function app object and index its functions, as the Python worker does.

The worker finds functions with the library's own indexing API
(``FunctionApp.get_functions()``) and reads each one's bindings; so do we.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FunctionCatalog", "HttpFunction", "IndexedFunction", "load_catalog"]


@dataclass
class IndexedFunction:
    """One function of the app: its name, trigger, bindings and user code."""

    name: str
    trigger_type: str
    trigger_name: str
    bindings: list[dict[str, Any]]
    handler: Callable[..., Any]

    @property
    def is_async(self) -> bool:
        """True when the user code is a coroutine function."""
        return inspect.iscoroutinefunction(self.handler)

    @property
    def parameter_names(self) -> list[str]:
        """Names of the user function's parameters."""
        return list(inspect.signature(self.handler).parameters)

    def binding_of_type(self, binding_type: str) -> dict[str, Any] | None:
        """The first binding of the given type, if any."""
        return next((b for b in self.bindings if b["type"] == binding_type), None)


@dataclass
class HttpFunction:
    """An HTTP-triggered function with its compiled route."""

    function: IndexedFunction
    route: str
    methods: frozenset[str]
    auth_level: str
    pattern: re.Pattern[str]


@dataclass
class FunctionCatalog:
    """The app's functions, indexed the way the host dispatches to them."""

    http: list[HttpFunction] = field(default_factory=list)
    orchestrators: dict[str, IndexedFunction] = field(default_factory=dict)
    activities: dict[str, IndexedFunction] = field(default_factory=dict)
    entities: dict[str, IndexedFunction] = field(default_factory=dict)

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


def load_catalog(app_ref: str, app_dir: Path | None = None) -> FunctionCatalog:
    """Import ``module:attribute`` and index the functions of that app object."""
    module_name, _, attr = app_ref.partition(":")
    if app_dir is not None and str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app")
    catalog = FunctionCatalog()
    for fn in app.get_functions():
        bindings = [_plain_binding(b) for b in fn.get_bindings_dict()["bindings"]]
        trigger = next(b for b in bindings if b["type"].lower().endswith("trigger"))
        indexed = IndexedFunction(
            name=fn.get_function_name(),
            trigger_type=trigger["type"],
            trigger_name=trigger["name"],
            bindings=bindings,
            handler=fn.get_user_function(),
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
        else:
            raise ValueError(f"function {indexed.name!r}: trigger {kind!r} is not supported")
    # Literal segments win over parameters, as in ASP.NET routing.
    catalog.http.sort(key=lambda f: _route_precedence(f.route))
    return catalog


def _plain_binding(binding: dict[str, Any]) -> dict[str, Any]:
    """Binding dict with enum values turned into their JSON strings."""
    plain: dict[str, Any] = {}
    for key, value in binding.items():
        if isinstance(value, list):
            plain[key] = [getattr(v, "value", v) for v in value]
        else:
            plain[key] = getattr(value, "value", value)
    return plain


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
