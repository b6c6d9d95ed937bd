"""The sample app under the real Functions host, where Core Tools and Azurite exist.

Skipped on machines without ``func`` and ``azurite`` (Core Tools' installer
downloads binaries, so it cannot be installed here). Where they exist, this
checks that what the emulator runs also runs under ``func start``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .conftest import SAMPLE_APP

pytestmark = [
    pytest.mark.realhost,
    pytest.mark.skipif(
        not (shutil.which("func") and shutil.which("azurite")),
        reason="Azure Functions Core Tools and Azurite are not installed",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sample_orchestration_runs_under_func_start(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(SAMPLE_APP, app)
    (app / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "FUNCTIONS_WORKER_RUNTIME": "python",
                    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                    "SAMPLE_COUNTER_DIR": str(tmp_path),
                },
            }
        )
    )
    port = _free_port()
    azurite = subprocess.Popen(
        ["azurite", "--silent", "--location", str(tmp_path / "azurite")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    func = subprocess.Popen(
        ["func", "start", "--port", str(port)],
        cwd=app,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = requests.post(
                    f"http://127.0.0.1:{port}/api/run/sequence", json=["a", "b"], timeout=60
                )
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        assert r.status_code == 200
        assert r.json() == ["hello a", "hello b"]
    finally:
        func.terminate()
        azurite.terminate()
        func.wait(30)
        azurite.wait(30)
