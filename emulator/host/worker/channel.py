"""One language worker process and its FunctionRpc EventStream, seen from the host.

The host starts the worker with the command line Azure's host uses for Python,
waits for its StartStream, then drives WorkerInit → FunctionsMetadata →
FunctionLoad → Invocation. Replies are matched by request kind (init,
metadata), function id (load) and invocation id (invoke). RpcLog messages go
to the host's log with the invocation id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import grpc
from function_rpc import FunctionRpc_pb2 as pb

__all__ = ["MAX_MESSAGE_BYTES", "AppLoadError", "WorkerChannel", "WorkerGoneError", "pb"]

log = logging.getLogger("emulator.host.worker")
worker_log = logging.getLogger("emulator.host.worker.log")

# What the real host passes as --grpcMaxMessageLength (int.MaxValue).
MAX_MESSAGE_BYTES = 2147483647
HOST_VERSION = "4.1037.0.0"
START_TIMEOUT_SECONDS = 60.0
INIT_TIMEOUT_SECONDS = 120.0

_RPC_TO_PY_LEVEL = {
    pb.RpcLog.Trace: logging.DEBUG,
    pb.RpcLog.Debug: logging.DEBUG,
    pb.RpcLog.Information: logging.INFO,
    pb.RpcLog.Warning: logging.WARNING,
    pb.RpcLog.Error: logging.ERROR,
    pb.RpcLog.Critical: logging.CRITICAL,
}


class AppLoadError(RuntimeError):
    """The worker could not load the app: its own message says why."""


class WorkerGoneError(RuntimeError):
    """The worker process ended or its stream closed before answering."""


class WorkerChannel:
    """A worker process: start it, attach its stream, send requests, await replies."""

    def __init__(
        self, command: list[str], app_dir: Path, env: dict[str, str], index: int = 0
    ) -> None:
        self.worker_id = str(uuid.uuid4())
        self.request_id = str(uuid.uuid4())
        self.index = index
        self._command = command
        self._app_dir = app_dir
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._outgoing: asyncio.Queue[pb.StreamingMessage] = asyncio.Queue()
        self._attached: asyncio.Future[None] | None = None
        self._closed: asyncio.Event = asyncio.Event()
        self._pending: dict[tuple[str, str], asyncio.Future[pb.StreamingMessage]] = {}
        self.in_flight = 0

    @property
    def pid(self) -> int | None:
        """The worker's process id, once started."""
        return self._process.pid if self._process else None

    def launch(self, grpc_port: int) -> None:
        """Start the worker process, as Azure's host starts the Python worker."""
        self._attached = asyncio.get_running_loop().create_future()
        python, script = self._command[0], self._command[1:]
        # worker.config.json's "-X no_debug_ranges", then the host's arguments, old and new style.
        argv = [python, "-X", "no_debug_ranges", *script]
        argv += ["--host", "127.0.0.1", "--port", str(grpc_port)]
        argv += ["--workerId", self.worker_id, "--requestId", self.request_id]
        argv += ["--grpcMaxMessageLength", str(MAX_MESSAGE_BYTES)]
        argv += ["--functions-uri", f"http://127.0.0.1:{grpc_port}/"]
        argv += ["--functions-worker-id", self.worker_id]
        argv += ["--functions-request-id", self.request_id]
        argv += ["--functions-grpc-max-message-length", str(MAX_MESSAGE_BYTES)]
        self._process = subprocess.Popen(
            argv, cwd=str(self._app_dir), env=self._env, stdin=subprocess.DEVNULL
        )
        log.info("worker %d started: pid %d", self.index, self._process.pid)

    async def wait_attached(self) -> None:
        """Wait for the worker's StartStream; raise if it exits first."""
        assert self._attached is not None
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_SECONDS
        while not self._attached.done():
            if self._process is not None and self._process.poll() is not None:
                raise WorkerGoneError(
                    f"worker exited with status {self._process.returncode} before connecting"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise WorkerGoneError("worker did not connect in time")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._attached), 0.1)

    async def run_stream(self, context: grpc.aio.ServicerContext) -> None:
        """Serve the worker's EventStream (called by the gRPC servicer) until it closes."""
        assert self._attached is not None
        self._attached.set_result(None)
        writer = asyncio.create_task(self._write_loop(context))
        try:
            while True:
                message = await context.read()
                if message is grpc.aio.EOF:
                    break
                self._on_message(message)
        finally:
            writer.cancel()
            self._on_closed()

    async def initialize(self) -> pb.WorkerInitResponse:
        """WorkerInit: the library worker indexes the app here; a failure is AppLoadError."""
        reply = await self._request(
            ("init", ""),
            pb.StreamingMessage(
                worker_init_request=pb.WorkerInitRequest(
                    host_version=HOST_VERSION,
                    capabilities={"MultiStream": "10"},
                    worker_directory=str(Path(self._command[-1]).parent),
                    function_app_directory=str(self._app_dir),
                ),
            ),
            INIT_TIMEOUT_SECONDS,
        )
        init = reply.worker_init_response
        if init.result.status != pb.StatusResult.Success:
            raise AppLoadError(init.result.exception.message)
        return init

    async def function_metadata(self) -> list[pb.RpcFunctionMetadata]:
        """FunctionsMetadata: the functions the worker indexed; a failure is AppLoadError."""
        reply = await self._request(
            ("metadata", ""),
            pb.StreamingMessage(
                functions_metadata_request=pb.FunctionsMetadataRequest(
                    function_app_directory=str(self._app_dir)
                ),
            ),
            INIT_TIMEOUT_SECONDS,
        )
        answer = reply.function_metadata_response
        if answer.result.status != pb.StatusResult.Success:
            raise AppLoadError(answer.result.exception.message)
        return list(answer.function_metadata_results)

    async def load(self, function: pb.RpcFunctionMetadata) -> None:
        """FunctionLoad of one function; a failure is AppLoadError."""
        reply = await self._request(
            ("load", function.function_id),
            pb.StreamingMessage(
                function_load_request=pb.FunctionLoadRequest(
                    function_id=function.function_id, metadata=function
                ),
            ),
            INIT_TIMEOUT_SECONDS,
        )
        loaded = reply.function_load_response
        if loaded.result.status != pb.StatusResult.Success:
            raise AppLoadError(f"cannot load {function.name}: {loaded.result.exception.message}")

    async def invoke(
        self,
        function_id: str,
        input_data: list[pb.ParameterBinding],
        trigger_metadata: dict[str, pb.TypedData] | None = None,
    ) -> pb.InvocationResponse:
        """One invocation; returns the worker's InvocationResponse (success or failure)."""
        invocation_id = str(uuid.uuid4())
        self.in_flight += 1
        try:
            reply = await self._request(
                ("invoke", invocation_id),
                pb.StreamingMessage(
                    invocation_request=pb.InvocationRequest(
                        invocation_id=invocation_id,
                        function_id=function_id,
                        input_data=input_data,
                        trigger_metadata=trigger_metadata or {},
                    ),
                ),
                None,
            )
        finally:
            self.in_flight -= 1
        return reply.invocation_response

    @property
    def alive(self) -> bool:
        """True while the process runs and its stream is open."""
        return (
            self._process is not None and self._process.poll() is None and not self._closed.is_set()
        )

    async def stop(self, timeout: float = 5.0) -> None:
        """Terminate the worker (the process this channel started, and only it)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._outgoing.put_nowait(pb.StreamingMessage(worker_terminate=pb.WorkerTerminate()))
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                await asyncio.to_thread(self._process.wait)
        self._on_closed()

    # -- plumbing ------------------------------------------------------------

    async def _request(
        self, key: tuple[str, str], message: pb.StreamingMessage, timeout: float | None
    ) -> pb.StreamingMessage:
        if self._closed.is_set():
            raise WorkerGoneError(f"worker {self.index} is gone")
        future: asyncio.Future[pb.StreamingMessage] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        self._outgoing.put_nowait(message)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(key, None)

    async def _write_loop(self, context: grpc.aio.ServicerContext) -> None:
        while True:
            await context.write(await self._outgoing.get())

    def _on_message(self, message: pb.StreamingMessage) -> None:
        kind = message.WhichOneof("content")
        if kind == "rpc_log":
            record = message.rpc_log
            worker_log.log(
                _RPC_TO_PY_LEVEL.get(record.level, logging.INFO),
                "[worker %d%s] %s: %s",
                self.index,
                f" invocation {record.invocation_id}" if record.invocation_id else "",
                record.category,
                record.message,
            )
            return
        key = {
            "worker_init_response": ("init", ""),
            "function_metadata_response": ("metadata", ""),
            "function_load_response": ("load", message.function_load_response.function_id),
            "invocation_response": ("invoke", message.invocation_response.invocation_id),
        }.get(kind or "")
        future = self._pending.get(key) if key else None
        if future is None:
            if kind not in ("worker_status_response",):
                log.warning("worker %d: unexpected %s", self.index, kind)
            return
        if not future.done():
            future.set_result(message)

    def _on_closed(self) -> None:
        self._closed.set()
        code = self._process.poll() if self._process else None
        error = WorkerGoneError(
            f"worker {self.index} stream closed"
            + (f" (exit status {code})" if code is not None else "")
        )
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)


def worker_environment(
    app_dir: Path, worker_directory: Path, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """The worker's environment: the host's, plus what Azure's host and ``func`` add.

    ``PYTHONPATH`` is the emulator's own (it points at this repository), so it
    is not passed on: the worker must find ``function_app`` in the app folder
    only. As the real host does for Python, ``PYTHON_THREADPOOL_THREAD_COUNT``
    is 1000 unless the app sets it.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("AZURE_FUNCTIONS_ENVIRONMENT", "Development")
    env.setdefault("PYTHON_THREADPOOL_THREAD_COUNT", "1000")
    env.update(
        FUNCTIONS_WORKER_RUNTIME="python",
        AzureWebJobsScriptRoot=str(app_dir),
        FUNCTIONS_APPLICATION_DIRECTORY=str(app_dir),
        FUNCTIONS_WORKER_DIRECTORY=str(worker_directory),
    )
    env.update(extra or {})
    return env
