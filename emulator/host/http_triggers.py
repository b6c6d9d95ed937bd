"""HTTP-triggered functions: route matching, keys, and the worker's request/response mapping.

Status codes are the host's: no matching route or method → 404 with an empty
body (the host answers a known route with a wrong method with 404 too), a
missing or wrong key → 401, an exception in user code → 500 with an empty body.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import azure.functions as func
from aiohttp import web

from .app_loader import FunctionCatalog, HttpFunction
from .keys import HostKeys

__all__ = ["HttpTriggerHandler", "presented_key"]

log = logging.getLogger("emulator.host.http")


def presented_key(request: web.Request) -> str | None:
    """The key a caller presented: ``code`` query parameter or ``x-functions-key`` header."""
    return request.query.get("code") or request.headers.get("x-functions-key")


class HttpTriggerHandler:
    """Serves ``/api/{route}`` by invoking the matching HTTP-triggered function."""

    def __init__(
        self,
        catalog: FunctionCatalog,
        keys: HostKeys,
        client_binding: Callable[[], dict[str, Any]],
    ) -> None:
        self._catalog = catalog
        self._keys = keys
        self._client_binding = client_binding

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """Route the request to a function and translate its response."""
        path = request.match_info.get("path", "")
        candidates = self._catalog.match_http(path)
        match = next(
            (
                (fn, params)
                for fn, params in candidates
                if not fn.methods or request.method.upper() in fn.methods
            ),
            None,
        )
        if match is None:
            return web.Response(status=404)
        fn, route_params = match
        if not self._keys.allows(presented_key(request), fn.auth_level):
            return web.Response(status=401)
        body = await request.read()
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=route_params,
            body=body,
        )
        try:
            result = await self._invoke(fn, http_request)
        except Exception:
            log.exception("function %s failed", fn.function.name)
            return web.Response(status=500)
        return _to_aiohttp(result)

    async def _invoke(self, fn: HttpFunction, http_request: func.HttpRequest) -> Any:
        kwargs: dict[str, Any] = {}
        for binding in fn.function.bindings:
            if binding["type"] == "httpTrigger":
                kwargs[binding["name"]] = http_request
            elif binding["type"] == "durableClient":
                kwargs[binding["name"]] = json.dumps(self._client_binding())
        if "context" in fn.function.parameter_names and "context" not in kwargs:
            kwargs["context"] = _InvocationContext(fn.function.name)
        if fn.function.is_async:
            return await fn.function.handler(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn.function.handler, **kwargs))


class _InvocationContext:
    """The few ``func.Context`` attributes user code reads."""

    def __init__(self, function_name: str) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_directory = ""
        self.trace_context = None
        self.retry_context = None


def _to_aiohttp(result: Any) -> web.Response:
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers)
        if result.mimetype and "content-type" not in {k.lower() for k in headers}:
            content_type = result.mimetype
            if result.charset and content_type.startswith("text/"):
                content_type += f"; charset={result.charset}"
            headers["Content-Type"] = content_type
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if result is None:
        return web.Response(status=204)
    if isinstance(result, bytes):
        return web.Response(body=result, content_type="application/octet-stream")
    if isinstance(result, str):
        return web.Response(text=result, content_type="text/plain")
    return web.json_response(result)
