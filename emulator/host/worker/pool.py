"""The host's language workers: a gRPC server, N worker processes, invocations spread over them.

As in Azure, ``FUNCTIONS_WORKER_PROCESS_COUNT`` (default 1, at most 10) worker
processes run the same app, each indexing it on its own; invocations go to them
in turn. A worker that dies is replaced before the next invocation that would
use it (its in-flight invocations fail, as in Azure).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import grpc
from function_rpc import FunctionRpc_pb2_grpc as pb_grpc

from .channel import (
    MAX_MESSAGE_BYTES,
    AppLoadError,
    WorkerChannel,
    WorkerGoneError,
    pb,
    worker_environment,
)

__all__ = [
    "MAX_PROCESS_COUNT",
    "AppLoadError",
    "WorkerGoneError",
    "WorkerPool",
    "default_worker_command",
    "process_count_setting",
]

log = logging.getLogger("emulator.host.worker")

MAX_PROCESS_COUNT = 10
_REPO_ROOT = Path(__file__).resolve().parents[3]
PROXY_WORKER = Path(__file__).with_name("proxy_worker.py")


def default_worker_command() -> list[str]:
    """The worker's interpreter (``EMULATOR_WORKER_PYTHON`` or .venv-worker) and our proxy."""
    python = os.environ.get("EMULATOR_WORKER_PYTHON") or str(
        _REPO_ROOT / ".venv-worker" / "bin" / "python"
    )
    return [python, str(PROXY_WORKER)]


def process_count_setting(value: str | None) -> int:
    """``FUNCTIONS_WORKER_PROCESS_COUNT`` as the host reads it: at most 10; 1 if unset or below.

    Raises ValueError for a value the host refuses (not an integer, above 10).
    """
    if not value:
        return 1
    try:
        count = int(value)
    except ValueError as exc:
        raise ValueError(
            f"FUNCTIONS_WORKER_PROCESS_COUNT must be an integer, got {value!r}"
        ) from exc
    if count > MAX_PROCESS_COUNT:
        raise ValueError(
            f"FUNCTIONS_WORKER_PROCESS_COUNT must not be greater than {MAX_PROCESS_COUNT}, "
            f"got {count}"
        )
    return max(count, 1)


class _Servicer(pb_grpc.FunctionRpcServicer):
    """Routes each worker's EventStream to its channel by the worker id of its StartStream."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool

    async def EventStream(self, request_iterator, context):
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("content") != "start_stream":
            log.warning("a worker opened a stream without StartStream")
            return
        channel = self._pool.channel_for(first.start_stream.worker_id)
        if channel is None:
            log.warning("StartStream from unknown worker %s", first.start_stream.worker_id)
            return
        await channel.run_stream(context)


class WorkerPool:
    """Starts the workers, checks they loaded the app, and hands out invocations."""

    def __init__(
        self,
        app_dir: Path,
        process_count: int = 1,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.process_count = process_count
        self._command = list(command or default_worker_command())
        self._env = worker_environment(app_dir, Path(self._command[-1]).parent, env)
        self._server: grpc.aio.Server | None = None
        self._port = 0
        self._channels: list[WorkerChannel] = []
        self._by_worker_id: dict[str, WorkerChannel] = {}
        self._turn = itertools.count()
        self._restart_lock = asyncio.Lock()
        self.functions: list[pb.RpcFunctionMetadata] = []

    async def start(self) -> None:
        """Start the gRPC server and every worker; raise AppLoadError if the app cannot load."""
        if not Path(self._command[0]).exists():
            raise AppLoadError(
                f"worker interpreter {self._command[0]} not found: run `make venv` "
                "(it builds .venv-worker) or set EMULATOR_WORKER_PYTHON"
            )
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self._server = grpc.aio.server(options=options)
        pb_grpc.add_FunctionRpcServicer_to_server(_Servicer(self), self._server)
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        try:
            # As Azure: the first worker is asked for the app's functions; the
            # others are initialized and loaded with that metadata.
            first = await self._start_worker(0, None)
            others = await asyncio.gather(
                *(self._start_worker(i, self.functions) for i in range(1, self.process_count))
            )
        except BaseException:
            await self.stop()
            raise
        self._channels = [first, *others]

    def channel_for(self, worker_id: str) -> WorkerChannel | None:
        """The channel that launched the worker with this id."""
        return self._by_worker_id.get(worker_id)

    async def invoke(
        self,
        function_id: str,
        input_data: list[pb.ParameterBinding],
        trigger_metadata: dict[str, pb.TypedData] | None = None,
    ) -> pb.InvocationResponse:
        """Invoke on the next worker in turn; raise WorkerGoneError if its process died."""
        index = next(self._turn) % len(self._channels)
        channel = self._channels[index]
        if not channel.alive:
            channel = await self._replace(index)
        return await channel.invoke(function_id, input_data, trigger_metadata)

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [c.pid for c in self._channels if c.pid is not None]

    async def stop(self) -> None:
        """Terminate every worker and the gRPC server."""
        await asyncio.gather(
            *(c.stop() for c in self._by_worker_id.values()), return_exceptions=True
        )
        if self._server is not None:
            await self._server.stop(0.5)

    # -- workers -------------------------------------------------------------

    async def _start_worker(
        self, index: int, functions: list[pb.RpcFunctionMetadata] | None
    ) -> WorkerChannel:
        """Start one worker; ``functions`` None means: ask it for the app's metadata."""
        channel = WorkerChannel(self._command, self.app_dir, self._env, index)
        self._by_worker_id[channel.worker_id] = channel
        channel.launch(self._port)
        try:
            await channel.wait_attached()
            await channel.initialize()
            if functions is None:
                functions = self.functions = await channel.function_metadata()
            for function in functions:
                await channel.load(function)
        except BaseException:
            await channel.stop()
            raise
        return channel

    async def _replace(self, index: int) -> WorkerChannel:
        async with self._restart_lock:
            channel = self._channels[index]
            if channel.alive:
                return channel
            log.warning("worker %d is gone; starting a new one", index)
            await channel.stop()
            self._by_worker_id.pop(channel.worker_id, None)
            replacement = await self._start_worker(index, self.functions)
            self._channels[index] = replacement
            return replacement
