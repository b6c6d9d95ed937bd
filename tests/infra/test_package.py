"""What a publish sends: the Function app only, and it loads whole in Microsoft's worker."""

from __future__ import annotations

import zipfile
from pathlib import Path

from emulator.launch import REPO_ROOT, start_service
from infra.package import build_package
from tests.app_functions import declared_function_names

NEVER_DEPLOYED = (
    "emulator", "tests", "bench", "cluster_lab", "demo", "docs", "node_client", "infra", ".venv",
)  # fmt: skip


def test_the_package_holds_the_app_and_nothing_of_the_stand_ins(tmp_path: Path) -> None:
    files = {p.as_posix() for p in build_package(REPO_ROOT, tmp_path / "app.zip")}

    assert {"function_app.py", "host.json", "requirements.txt"} <= files
    for package in ("http_api", "orchestrations", "activities", "mover"):
        assert f"{package}/__init__.py" in files
    for folder in NEVER_DEPLOYED:
        assert not [f for f in files if f.split("/")[0] == folder], folder
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert "local.settings.json" not in files


def test_the_packed_app_loads_every_function_in_the_worker(tmp_path: Path) -> None:
    declared = list(declared_function_names())
    build_package(REPO_ROOT, tmp_path / "app.zip")
    with zipfile.ZipFile(tmp_path / "app.zip") as archive:
        archive.extractall(tmp_path / "deployed")
    deployed, state = str(tmp_path / "deployed"), str(tmp_path / "state")
    host = start_service(
        ["host", "--app-dir", deployed, "--state", state, "--port", "0"],
        log_path=tmp_path / "host.log",
    )
    try:
        assert sorted(host.info["functions"]) == declared
    finally:
        host.stop()
