"""The client stays one stdlib-only file that runs on Python 3.6 (RHEL 8's platform python)."""

from __future__ import annotations

import ast
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CLIENT, clean_env
from .fake_azure import CLUSTER_IP, THIS_NIC, FakeServer, State


def test_vermin_finds_nothing_newer_than_python_3_6() -> None:
    vermin = Path(sys.executable).with_name("vermin")
    if importlib.util.find_spec("vermin") is None or not vermin.exists():
        pytest.skip("vermin is not installed (requirements-dev.txt)")
    result = subprocess.run(
        [str(vermin), "-t=3.6-", "--no-tips", "--violations", str(CLIENT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_client_imports_only_the_standard_library() -> None:
    tree = ast.parse(CLIENT.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            modules.add((node.module or "").split(".")[0])
    assert modules, "no imports found"
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)
    assert "__future__" not in modules  # `annotations` would break 3.6; nothing else is needed


def test_the_client_is_an_executable_script() -> None:
    assert CLIENT.read_text().startswith("#!/usr/bin/env python3\n")
    assert os.access(CLIENT, os.X_OK)


def old_pythons() -> list[str]:
    """Python 3.6 / 3.7 interpreters on this machine (PATH or pyenv), if any."""
    found = []
    for name in ("python3.6", "python3.7"):
        candidates = [shutil.which(name) or ""]
        candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.*/bin/{name}")))
        for path in candidates:
            if path and subprocess.run([path, "-c", "pass"], capture_output=True).returncode == 0:
                found.append(path)
                break
    return found


@pytest.mark.parametrize("python", old_pythons() or [None])
def test_the_client_works_on_old_pythons(
    python: str | None, config: Path, azure: State, server: FakeServer
) -> None:
    if python is None:
        pytest.skip("no Python 3.6/3.7 interpreter on this machine")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [python, str(CLIENT), *args],
            env=clean_env(IPMOVER_CONFIG=str(config), CLP_EVENT="FAILOVER"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert run("status").returncode == 7
    result = run("acquire")
    assert result.returncode == 0, result.stderr
    assert f"add_ip_config {THIS_NIC} succeeded" in result.stdout
    assert run("status", "-q").returncode == 0
    assert "acquire" in run("history").stdout
    assert run("release", "--wait-imds").returncode == 0
    assert run("--help").returncode == 0
    assert run("acquire", "--ip", "10.5.0.111").returncode == 12
    assert azure.moves and all(m.context == {"event": "FAILOVER"} for m in azure.moves.values())
    assert CLUSTER_IP not in azure.visible
