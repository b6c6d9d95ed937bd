"""Fixtures for the host emulator's tests: one host running the sample app per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.launch import REPO_ROOT, ServiceProcess, start_service

SAMPLE_APP = Path(__file__).parent / "sample_app"


class HostClient:
    """Talks to a running host the way a user would: its HTTP routes and webhooks."""

    def __init__(self, service: ServiceProcess) -> None:
        self.service = service
        self.url: str = service.info["url"]
        self.rpc: str = service.info["rpcBaseUrl"]
        self.keys: dict[str, str] = json.loads(Path(service.info["keysFile"]).read_text())
        self.http = requests.Session()

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call /api/PATH with the function key."""
        params = dict(kwargs.pop("params", {}) or {})
        params.setdefault("code", self.keys["function"])
        return self.http.request(
            method, f"{self.url}/api/{path}", params=params, timeout=30, **kwargs
        )

    def start(self, name: str, payload: Any = None, instance_id: str | None = None) -> dict:
        """Start an orchestration through the sample app's SDK-client starter."""
        params = {"id": instance_id} if instance_id else {}
        r = self.api("POST", f"start/{name}", json=payload, params=params)
        assert r.status_code == 202, r.text
        return r.json()

    def status(self, instance_id: str, **query: str) -> requests.Response:
        """The management API's status (local RPC endpoint, as the SDK client uses)."""
        return self.http.get(f"{self.rpc}instances/{instance_id}", params=query, timeout=30)

    def wait(self, instance_id: str, timeout: float = 30.0) -> dict:
        """Poll the status until the instance ends; return the final status body."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.status(instance_id)
            body = r.json()
            if body and body["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance_id} still {body} after {timeout}s")
            time.sleep(0.05)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Poll ``predicate`` until it holds or the deadline passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)


def start_sample_host(
    state: Path,
    counters: Path,
    port: int = 0,
    env: dict[str, str] | None = None,
    app_dir: Path = SAMPLE_APP,
) -> ServiceProcess:
    """Start a host process for the sample app (``env`` adds app settings; ``app_dir``: a
    copy of the sample app, e.g. with other host.json settings)."""
    return start_service(
        [
            "host",
            "--app-dir",
            str(app_dir),
            "--state",
            str(state),
            "--port",
            str(port),
            "--log-level",
            "INFO",
        ],
        log_path=state / "host.log",
        env={"SAMPLE_COUNTER_DIR": str(counters), **(env or {})},
    )


def run_host_expecting_exit(app_dir: Path, state: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m emulator host`` on ``app_dir``; it must exit by itself."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **env)
    command = [sys.executable, "-m", "emulator", "host", "--app-dir", str(app_dir)]
    return subprocess.run(
        [*command, "--state", str(state), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        cwd=REPO_ROOT,
    )


@pytest.fixture(scope="session")
def counters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder where the sample activities count their runs."""
    return tmp_path_factory.mktemp("counters")


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory, counters: Path) -> Iterator[HostClient]:
    """One sample-app host for the whole session."""
    service = start_sample_host(tmp_path_factory.mktemp("host-state"), counters)
    try:
        yield HostClient(service)
    finally:
        service.stop()
