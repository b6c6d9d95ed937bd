"""HTTP-triggered functions: route matching, keys, and the RpcHttp mapping in and out.

Status codes are the host's: no matching route or method → 404 with an empty
body (the host answers a known route with a wrong method with 404 too), a
missing or wrong key → 401, an exception in user code → 500 with an empty body.
The function itself runs in the worker; this module turns the aiohttp request
into the ``RpcHttp`` Azure's host sends, and the worker's ``RpcHttp`` back into
a response.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from multidict import CIMultiDict

from .catalog import FunctionCatalog
from .invoker import Invoker, typed_value
from .keys import HostKeys
from .worker.channel import pb

__all__ = ["HttpTriggerHandler", "presented_key"]

log = logging.getLogger("emulator.host.http")


def presented_key(request: web.Request) -> str | None:
    """The key a caller presented: ``code`` query parameter or ``x-functions-key`` header."""
    return request.query.get("code") or request.headers.get("x-functions-key")


class HttpTriggerHandler:
    """Serves ``/api/{route}`` by invoking the matching HTTP-triggered function."""

    def __init__(self, catalog: FunctionCatalog, keys: HostKeys, invoker: Invoker) -> None:
        self._catalog = catalog
        self._keys = keys
        self._invoker = invoker

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
        rpc = rpc_http_request(request, route_params, body)
        outcome = await self._invoker.invoke(
            fn.function, pb.TypedData(http=rpc), http_trigger_metadata(rpc, request, body)
        )
        if not outcome.ok:
            log.error("function %s failed: %s", fn.function.name, outcome.error)
            return web.Response(status=500)
        return response_from_worker(outcome.value)


def rpc_http_request(request: web.Request, route_params: dict[str, str], body: bytes) -> pb.RpcHttp:
    """The RpcHttp Azure's host sends to the Python worker for a request.

    Header names lower-cased, query parameters with empty values dropped, the
    body only when the request has a positive Content-Length (a chunked body
    is not passed on), and as bytes whatever its type: the worker asked for
    ``RpcHttpBodyOnly`` and ``RawHttpBodyBytes``, so ``rawBody`` stays empty.
    """
    query: dict[str, str] = {}
    for key in request.query:
        joined = ",".join(request.query.getall(key))
        if joined:
            query[key] = joined
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        name = key.lower()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    rpc = pb.RpcHttp(
        method=request.method,
        url=str(request.url),
        headers=headers,
        query=query,
        params=route_params,
    )
    if body and (request.content_length or 0) > 0:
        rpc.body.CopyFrom(pb.TypedData(bytes=body))
    return rpc


def http_trigger_metadata(
    rpc: pb.RpcHttp, request: web.Request, body: bytes
) -> dict[str, pb.TypedData]:
    """The trigger metadata the host adds: a JSON body's top-level fields, query, route, headers.

    The request object itself is left out (the worker declared
    ``RpcHttpTriggerMetadataRemoved``).
    """
    metadata: dict[str, pb.TypedData] = {}
    if rpc.HasField("body") and request.content_type == "application/json":
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):  # the host skips a body it cannot parse
            parsed = None
        if isinstance(parsed, dict):
            for key, value in parsed.items():
                if isinstance(value, dict):
                    metadata[key] = pb.TypedData(json=json.dumps(value))
                elif value is not None and not isinstance(value, list):
                    metadata[key] = pb.TypedData(string=str(value))
    for key, value in rpc.query.items():
        if key != "code":
            metadata[key] = pb.TypedData(string=value)
    for key, value in rpc.params.items():
        metadata[key] = pb.TypedData(string=value)
    metadata["Query"] = pb.TypedData(json=json.dumps(dict(rpc.query)))
    metadata["Headers"] = pb.TypedData(json=json.dumps(dict(request.headers)))
    return metadata


def response_from_worker(value: pb.TypedData | None) -> web.Response:
    """The HTTP response for a function's ``$return`` value as the worker encoded it.

    As Azure's host: no value is 200 with an empty body; a status code that is
    missing or not a number is 200.
    """
    kind = value.WhichOneof("data") if value is not None else None
    if value is None or kind is None:
        return web.Response(status=200)
    if kind != "http":
        content = typed_value(value)
        if kind == "json":
            return web.Response(body=content.encode(), content_type="application/json")
        if isinstance(content, bytes):
            return web.Response(body=content, content_type="application/octet-stream")
        return web.Response(text=str(content), content_type="text/plain")
    http = value.http
    headers = CIMultiDict(http.headers)
    body = typed_value(http.body) if http.HasField("body") else b""
    if isinstance(body, str):
        body = body.encode()
    status = int(http.status_code) if http.status_code.strip().isdigit() else 200
    return web.Response(status=status, body=body or None, headers=headers)
