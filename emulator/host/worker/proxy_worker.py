"""Our stand-in for Microsoft's Python *proxy worker*: the gRPC client around the worker library.

In Azure, for Python 3.13 and later, the host launches a small "proxy worker"
that ships with the host (not on PyPI). It connects to the host's FunctionRpc
EventStream and hands every request to the *library worker*
``azure_functions_runtime`` (PyPI), the version the app's requirements.txt
names. This file is our version of that proxy; everything that decides what
the app is and how it runs -- indexing, validation, binding conversion,
invocation, thread pool -- is Microsoft's library.

It runs in the worker's virtual environment (Python 3.13), started by the host
with the real host's command line::

    python proxy_worker.py --host H --port P --workerId W --requestId R --grpcMaxMessageLength N

with ``AzureWebJobsScriptRoot`` set and the app folder as working directory.
Logs, the app's and the library's, go back to the host as RpcLog messages
carrying the invocation id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import logging
import os
import sys
import types
from dataclasses import dataclass
from typing import Any

import grpc
from function_rpc import FunctionRpc_pb2 as pb
from function_rpc import FunctionRpc_pb2_grpc as pb_grpc
from function_rpc.shared import NullableTypes_pb2 as nullable

# The ``protos`` namespace the library expects; the real proxy passes its own module.
PROTOS = types.SimpleNamespace(
    **{n: getattr(pb, n) for n in pb.DESCRIPTOR.message_types_by_name},
    **{n: getattr(nullable, n) for n in nullable.DESCRIPTOR.message_types_by_name},
    FunctionRpcStub=pb_grpc.FunctionRpcStub,
)
CONNECT_TIMEOUT_SECONDS = 10.0

_invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "proxy_invocation", default=None
)


@dataclass
class WorkerRequest:
    """What the library reads from the proxy: the message and its properties."""

    name: str
    request: Any
    properties: dict[str, Any] | None = None


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="proxy_worker")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workerId", dest="worker_id", required=True)
    parser.add_argument("--requestId", dest="request_id", required=True)
    parser.add_argument("--grpcMaxMessageLength", dest="max_length", type=int, default=0)
    # The host passes the same four again under newer names; like Microsoft's proxy,
    # accept and ignore them.
    for name in ("uri", "worker-id", "request-id", "grpc-max-message-length"):
        parser.add_argument(f"--functions-{name}")
    return parser.parse_args(argv)


class RpcLogHandler(logging.Handler):
    """Sends each log record to the host as an RpcLog, tagged with its invocation."""

    _LEVELS = (
        (logging.CRITICAL, pb.RpcLog.Critical),
        (logging.ERROR, pb.RpcLog.Error),
        (logging.WARNING, pb.RpcLog.Warning),
        (logging.INFO, pb.RpcLog.Information),
        (logging.DEBUG, pb.RpcLog.Debug),
    )

    def __init__(self, send: Any, request_id: str, invocation_id_cv: Any) -> None:
        super().__init__()
        self._send = send
        self._request_id = request_id
        self._library_invocation = invocation_id_cv

    def emit(self, record: logging.LogRecord) -> None:
        level = next((rpc for py, rpc in self._LEVELS if record.levelno >= py), pb.RpcLog.Trace)
        system = record.name.startswith(("azure_functions_runtime", "azure.functions", "proxy"))
        invocation = self._library_invocation.get() or _invocation.get() or ""
        try:
            message = self.format(record)
        except Exception:  # a broken log call must not break the invocation
            message = str(record.msg)
        self._send(
            pb.StreamingMessage(
                request_id=self._request_id,
                rpc_log=pb.RpcLog(
                    level=level,
                    message=message,
                    category=record.name,
                    log_category=pb.RpcLog.System if system else pb.RpcLog.User,
                    invocation_id=invocation,
                ),
            )
        )


async def serve(args: argparse.Namespace) -> None:
    """Connect to the host and serve its requests until the stream ends."""
    script_root = os.environ.get("AzureWebJobsScriptRoot")  # noqa: SIM112 (Azure's name)
    if script_root and script_root not in sys.path:
        sys.path.append(script_root)  # as Microsoft's worker does

    import azure_functions_runtime as library  # Microsoft's code from here on

    loop = asyncio.get_running_loop()
    outgoing: asyncio.Queue[pb.StreamingMessage] = asyncio.Queue()

    def send(message: pb.StreamingMessage) -> None:
        # Log records come from the library's thread pool too.
        loop.call_soon_threadsafe(outgoing.put_nowait, message)

    options = []
    if args.max_length:
        options = [
            ("grpc.max_receive_message_length", args.max_length),
            ("grpc.max_send_message_length", args.max_length),
        ]
    channel = grpc.aio.insecure_channel(f"{args.host}:{args.port}", options=options)
    await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_SECONDS)

    async def stream_out() -> Any:
        while True:
            yield await outgoing.get()

    call = pb_grpc.FunctionRpcStub(channel).EventStream(stream_out())
    outgoing.put_nowait(
        pb.StreamingMessage(
            request_id=args.request_id, start_stream=pb.StartStream(worker_id=args.worker_id)
        )
    )

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RpcLogHandler(send, args.request_id, library.invocation_id_cv))
    debug = os.environ.get("PYTHON_ENABLE_DEBUG_LOGGING", "").lower() in ("1", "true")
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    log = logging.getLogger("proxy_worker")
    log.info(
        "proxy worker: Python %s, azure_functions_runtime %s",
        sys.version.split()[0],
        library.version.VERSION,
    )

    properties = {"protos": PROTOS, "host": args.host}

    async def handle(message: pb.StreamingMessage) -> None:
        kind = message.WhichOneof("content")
        if kind == "worker_init_request":
            library.start_threadpool_executor()
            init = await library.worker_init_request(
                WorkerRequest("WorkerInitRequest", message, properties)
            )
            send(pb.StreamingMessage(request_id=args.request_id, worker_init_response=init))
        elif kind == "functions_metadata_request":
            metadata = await library.functions_metadata_request(
                WorkerRequest("WorkerMetadataRequest", message)
            )
            send(
                pb.StreamingMessage(
                    request_id=message.request_id, function_metadata_response=metadata
                )
            )
        elif kind == "function_load_request":
            loaded = await library.function_load_request(
                WorkerRequest("FunctionLoadRequest", message)
            )
            send(pb.StreamingMessage(request_id=args.request_id, function_load_response=loaded))
        elif kind == "invocation_request":
            _invocation.set(message.invocation_request.invocation_id)
            answer = await library.invocation_request(
                WorkerRequest("FunctionInvocationRequest", message)
            )
            send(pb.StreamingMessage(request_id=args.request_id, invocation_response=answer))
        elif kind == "worker_status_request":
            send(
                pb.StreamingMessage(
                    request_id=message.request_id, worker_status_response=pb.WorkerStatusResponse()
                )
            )
        elif kind == "worker_terminate":
            await channel.close()
        else:
            log.warning("proxy worker: unhandled message %s", kind)

    running: set[asyncio.Task[None]] = set()
    async for message in call:
        # Each request runs concurrently, as in Microsoft's worker.
        task = asyncio.create_task(handle(message))
        running.add(task)
        task.add_done_callback(running.discard)


def main() -> int:
    """Run until the host closes the stream or terminates the process."""
    args = _parse_args(sys.argv[1:])
    # The host ending the stream or the process is the normal way out.
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError, grpc.aio.AioRpcError):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
