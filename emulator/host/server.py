"""Assembles the host: store, dispatcher, the public port and the local RPC port."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .catalog import FunctionCatalog, build_catalog
from .dispatcher import Dispatcher
from .http_triggers import HttpTriggerHandler, presented_key
from .invoker import Invoker
from .keys import HostKeys, load_or_create_keys
from .management_api import HubSettings, ManagementApi
from .store import DurableStore
from .timers import TimerScheduler
from .worker.pool import AppLoadError, WorkerPool

__all__ = ["AppIndexError", "HostConfig", "LocalHost"]

# The host's default request size limit (100 MB); apps enforce their own, smaller ones.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask/"
RPC_PREFIX = "/durabletask/"


class AppIndexError(AppLoadError):
    """The worker loaded the app, but the host cannot index one of its functions."""


@dataclass
class HostConfig:
    """What ``python -m emulator host`` was asked to run."""

    app_dir: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 7071
    # None: host.json's maxConcurrentActivityFunctions, else the extension's default.
    activity_workers: int | None = None
    worker_processes: int = 1
    worker_command: list[str] | None = None


class LocalHost:
    """A running host: call ``start()`` inside an event loop, ``stop()`` to end."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        host_json = _read_host_json(config.app_dir)
        durable = host_json.get("extensions", {}).get("durableTask", {})
        self.hub = HubSettings(
            hub_name=durable.get("hubName", "TestHubName"),
            overridable_states=durable.get("overridableExistingInstanceStates", "NonRunningStates"),
            default_version=durable.get("defaultVersion"),
            version_match_strategy=durable.get("versionMatchStrategy", "CurrentOrOlder"),
            version_failure_strategy=durable.get("versionFailureStrategy", "Reject"),
        )
        # The extension's concurrency throttles (None: its default, 10 per processor).
        self.max_activities = _positive_int(durable, "maxConcurrentActivityFunctions")
        self.max_orchestrators = _positive_int(durable, "maxConcurrentOrchestratorFunctions")
        self.route_prefix = (
            host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api")
        )
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.keys: HostKeys
        self.keys, self.keys_file = load_or_create_keys(config.state_dir)
        self.workers = WorkerPool(config.app_dir, config.worker_processes, config.worker_command)
        self.catalog = FunctionCatalog()
        self.store: DurableStore | None = None
        self.dispatcher: Dispatcher | None = None
        self.timers: TimerScheduler | None = None
        self.base_url = ""
        self.rpc_base_url = ""
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        """Start the workers (they index the app), bind both ports, start the dispatcher and timers.

        Raises AppLoadError, with the worker's message, when the app cannot load;
        AppIndexError when a function's bindings are refused by the host (e.g.
        a timer schedule that is not NCRONTAB).
        """
        await self.workers.start()
        try:
            # App settings are the process environment, as in Azure (``%NAME%`` in schedules).
            self.catalog = build_catalog(self.workers.functions, os.environ)
        except ValueError as exc:
            await self.workers.stop()
            raise AppIndexError(str(exc)) from exc
        invoker = Invoker(self.workers, asyncio.get_running_loop(), self.client_binding)
        self.store = DurableStore(self.config.state_dir / "durable.sqlite")
        self.dispatcher = Dispatcher(
            self.store,
            self.catalog,
            invoker,
            self.hub.versioning,
            activity_workers=self.config.activity_workers or self.max_activities,
            orchestration_workers=self.max_orchestrators,
        )
        api = ManagementApi(
            self.store, self.catalog, self.dispatcher, self.hub, self.management_urls
        )

        public = web.Application(client_max_size=MAX_REQUEST_BYTES)
        api.add_routes(public, WEBHOOK_PREFIX, guard=self._system_key_guard)
        public.router.add_get("/admin/host/status", self._host_status)
        public.router.add_get("/", self._home)
        trigger = HttpTriggerHandler(self.catalog, self.keys, invoker)
        prefix = f"/{self.route_prefix}/" if self.route_prefix else "/"
        public.router.add_route("*", prefix + "{path:.*}", trigger)

        rpc = web.Application(client_max_size=MAX_REQUEST_BYTES)
        api.add_routes(rpc, RPC_PREFIX)

        public_port = await self._serve(public, self.config.host, self.config.port)
        rpc_port = await self._serve(rpc, "127.0.0.1", 0)
        shown_host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        self.base_url = f"http://{shown_host}:{public_port}"
        self.rpc_base_url = f"http://127.0.0.1:{rpc_port}{RPC_PREFIX}"
        self.dispatcher.start()
        self.timers = TimerScheduler(self.catalog.timers, invoker, self.config.state_dir)
        self.timers.start()

    async def stop(self) -> None:
        """Stop timers and serving, let running work finish, stop the workers, close the store."""
        if self.timers is not None:
            # First: a timer function under way may still call the management API.
            await self.timers.stop()
        for runner in self._runners:
            await runner.cleanup()
        if self.dispatcher is not None:
            # In a thread: running invocations need this loop to finish.
            await asyncio.to_thread(self.dispatcher.stop)
        await self.workers.stop()
        if self.store is not None:
            self.store.close()

    def ready_info(self) -> dict[str, Any]:
        """The ready line: where the host listens and where its keys are."""
        return {
            "ready": True,
            "url": self.base_url,
            "rpcBaseUrl": self.rpc_base_url,
            "keysFile": str(self.keys_file),
            "taskHub": self.hub.hub_name,
            "workerPids": self.workers.pids,
            "functions": sorted(
                [f.function.name for f in self.catalog.http]
                + [f.name for f in self.catalog.orchestrators.values()]
                + [f.name for f in self.catalog.activities.values()]
                + [f.name for f in self.catalog.entities.values()]
                + [t.function.name for t in self.catalog.timers]
            ),
        }

    def client_binding(self) -> dict[str, Any]:
        """The durableClient binding JSON the extension gives to client functions."""
        query = self._webhook_query()
        creation = f"{self.base_url}{WEBHOOK_PREFIX}orchestrators/{{functionName}}[/{{instanceId}}]"
        return {
            "taskHubName": self.hub.hub_name,
            "creationUrls": {
                "createNewInstancePostUri": f"{creation}?code={self.keys.durabletask_extension}",
                "createAndWaitOnNewInstancePostUri": (
                    f"{creation}?timeout={{timeoutInSeconds}}&pollingInterval="
                    f"{{intervalInSeconds}}&code={self.keys.durabletask_extension}"
                ),
            },
            "managementUrls": self.management_urls("INSTANCEID"),
            "baseUrl": f"{self.base_url}{WEBHOOK_PREFIX.rstrip('/')}",
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": self.rpc_base_url,
            "httpBaseUrl": "",
            "maxGrpcMessageSizeInBytes": 0,
            "grpcHttpClientTimeout": "00:01:40",
        }

    def management_urls(self, instance_id: str) -> dict[str, str]:
        """The management payload of ``create_check_status_response`` for one instance."""
        base = f"{self.base_url}{WEBHOOK_PREFIX}instances/{quote(instance_id, safe='')}"
        query = self._webhook_query()
        return {
            "id": instance_id,
            "purgeHistoryDeleteUri": f"{base}?{query}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
            "statusQueryGetUri": f"{base}?{query}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
            "restartPostUri": f"{base}/restart?{query}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
        }

    def _webhook_query(self) -> str:
        return (
            f"taskHub={self.hub.hub_name}&connection=Storage&code={self.keys.durabletask_extension}"
        )

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    async def _system_key_guard(self, request: web.Request) -> web.StreamResponse | None:
        if self.keys.allows(presented_key(request), "system"):
            return None
        return web.Response(status=401)

    async def _host_status(self, request: web.Request) -> web.Response:
        if not self.keys.allows(presented_key(request), "admin"):
            return web.Response(status=401)
        return web.json_response({"state": "Running", "version": "emulator"})

    async def _home(self, request: web.Request) -> web.Response:
        return web.Response(text="Your Functions host (local emulator) is running.")


def _positive_int(section: dict[str, Any], name: str) -> int | None:
    """An optional positive whole number of host.json; ValueError for anything else."""
    value = section.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"extensions.durableTask.{name} must be a positive integer, got {value!r}")
    return value


def _read_host_json(app_dir: Path) -> dict[str, Any]:
    path = app_dir / "host.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())
