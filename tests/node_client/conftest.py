"""Fixtures for the node client: the fake IMDS + mover API, a config file, a client runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .fake_azure import AUDIENCE, CLUSTER_IP, FakeServer, State

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "node_client" / "ipmover.py"
# The interpreter the client runs under; IPMOVER_TEST_PYTHON=python3.6 tries an old one.
CLIENT_PYTHON = os.environ.get("IPMOVER_TEST_PYTHON", sys.executable)
DROP_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(scope="session")
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def azure(server: FakeServer) -> State:
    """The fake's state, fresh for each test."""
    server.state.reset()
    return server.state


def write_config(path: Path, base: str, **extra: object) -> Path:
    """A config file for the fake at `base`; `extra` overrides keys (None drops one)."""
    values = {
        "url": base,
        "audience": AUDIENCE,
        "ip": CLUSTER_IP,
        "imds_url": base,
        "timeout": 10,
        "poll_interval": 0.02,
        "retry_backoff": 0.01,
        **extra,
    }
    lines = ["[ipmover]", *(f"{k} = {v}" for k, v in values.items() if v is not None)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path, server: FakeServer) -> Path:
    return write_config(tmp_path / "ipmover.conf", server.url)


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without proxies, IPMOVER_* and CLP_* variables, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in DROP_ENV and not k.startswith(("IPMOVER_", "CLP_", "OCF_"))
    }
    env.update(extra)
    return env


Runner = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run(config: Path) -> Runner:
    """Run the client as a real process with the test's config file."""

    def run_client(
        *args: str, env: dict[str, str] | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CLIENT_PYTHON, str(CLIENT), *args],
            env=clean_env(IPMOVER_CONFIG=str(config), **(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run_client
