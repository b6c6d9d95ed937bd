"""Orchestration versioning: ExecutionStarted.Version, defaultVersion and the match strategies."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.host.management_api import HubSettings
from emulator.host.store import DurableStore
from emulator.host.versioning import VersioningSettings, compare_versions
from emulator.launch import start_service

from .conftest import SAMPLE_APP, HostClient

# -- helpers ------------------------------------------------------------------


def app_with(root: Path, **durable: Any) -> Path:
    """A copy of the sample app whose host.json durableTask section has ``durable`` added."""
    app = root / "app"
    if not app.exists():
        shutil.copytree(SAMPLE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    host_json = json.loads((SAMPLE_APP / "host.json").read_text())
    host_json["extensions"]["durableTask"].update(durable)
    (app / "host.json").write_text(json.dumps(host_json))
    return app


def launch(app: Path, state: Path) -> HostClient:
    args = ["host", "--app-dir", str(app), "--state", str(state), "--port", "0"]
    service = start_service(
        [*args, "--log-level", "INFO"],
        log_path=state / "host.log",
        env={"SAMPLE_COUNTER_DIR": str(state)},
    )
    return HostClient(service)


def start(host: HostClient, name: str, payload: Any = None, version: str | None = None) -> str:
    """Start through the sample app's SDK client (``start_new(..., version=)``)."""
    params = {"version": version} if version is not None else {}
    r = host.api("POST", f"start/{name}", json=payload, params=params)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def stays_pending(host: HostClient, instance_id: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if host.status(instance_id).json()["runtimeStatus"] != "Pending":
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def current_or_older(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostClient]:
    """defaultVersion 2.0 with the default strategies (CurrentOrOlder, Reject)."""
    root = tmp_path_factory.mktemp("v-current")
    host = launch(app_with(root, defaultVersion="2.0"), root / "state")
    try:
        yield host
    finally:
        host.service.stop()


@pytest.fixture(scope="module")
def strict_fail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostClient]:
    """defaultVersion 9.1, Strict, Fail."""
    root = tmp_path_factory.mktemp("v-strict")
    app = app_with(
        root, defaultVersion="9.1", versionMatchStrategy="Strict", versionFailureStrategy="Fail"
    )
    host = launch(app, root / "state")
    try:
        yield host
    finally:
        host.service.stop()


# -- without defaultVersion (the session host) ----------------------------------------


def test_version_of_start_new_reaches_context_version(host: HostClient) -> None:
    assert host.wait(start(host, "report_version", version="1.5"))["output"] == "1.5"
    # Neither ?version= nor defaultVersion: "" (ExecutionStarted.Version is always there).
    assert host.wait(start(host, "report_version"))["output"] == ""


def test_version_query_parameter_of_the_management_api(host: HostClient) -> None:
    r = requests.post(
        f"{host.rpc}orchestrators/report_version", params={"version": "Preview-A"}, timeout=10
    )
    assert r.status_code == 202
    assert host.wait(r.json()["id"])["output"] == "Preview-A"


def test_sub_orchestration_gets_its_own_version_or_the_default_not_the_parents(
    host: HostClient,
) -> None:
    instance_id = start(host, "versioned_parent", {"child_version": "3.1"}, version="1.0")
    final = host.wait(instance_id)
    assert final["runtimeStatus"] == "Completed", final
    assert final["output"] == {"parent": "1.0", "explicit": "3.1", "default": ""}


def test_continue_as_new_keeps_the_version(host: HostClient) -> None:
    assert host.wait(start(host, "version_loop", version="7.0"))["output"] == "7.0"


# -- defaultVersion 2.0, CurrentOrOlder, Reject -----------------------------------------


def test_default_version_is_given_to_new_instances(current_or_older: HostClient) -> None:
    host = current_or_older
    assert host.wait(start(host, "report_version"))["output"] == "2.0"
    instance_id = start(host, "versioned_parent", {"child_version": "1.5"}, version="1.0")
    # The unversioned child gets the host's defaultVersion, not its parent's 1.0.
    final = host.wait(instance_id)
    assert final["output"] == {"parent": "1.0", "explicit": "1.5", "default": "2.0"}


def test_older_versions_run_and_newer_ones_are_rejected(current_or_older: HostClient) -> None:
    host = current_or_older
    assert host.wait(start(host, "report_version", version="1.9.9"))["output"] == "1.9.9"
    # 10.0 is newer than 2.0 as System.Version (as strings it would sort first).
    newer = start(host, "report_version", version="10.0")
    assert stays_pending(host, newer, 3.0)
    # A Pending instance shows no history, even when asked.
    assert "historyEvents" not in host.status(newer, showHistory="true").json()
    # Rejected work is retried with a growing delay, not in a busy loop.
    log = host.service.log_path.read_text()
    assert 1 <= log.count(f"not running {newer}") <= 4, log[-2000:]
    # Terminating runs no orchestrator code: a rejected instance can be terminated.
    r = requests.post(f"{host.rpc}instances/{newer}/terminate", params={"reason": "old"})
    assert r.status_code == 202
    assert host.wait(newer)["runtimeStatus"] == "Terminated"


def test_a_rejected_instance_runs_on_a_host_with_a_matching_version(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = launch(app_with(tmp_path, defaultVersion="2.0"), state)
    try:
        instance_id = start(host, "report_version", version="3.0")
        assert stays_pending(host, instance_id, 1.5)
    finally:
        host.service.stop()
    host = launch(app_with(tmp_path, defaultVersion="3.0"), state)
    try:
        final = host.wait(instance_id)
        assert (final["runtimeStatus"], final["output"]) == ("Completed", "3.0")
    finally:
        host.service.stop()


# -- defaultVersion 9.1, Strict, Fail ----------------------------------------------------


def test_strict_runs_equal_versions_only_and_fails_the_others(strict_fail: HostClient) -> None:
    host = strict_fail
    assert host.wait(start(host, "report_version"))["output"] == "9.1"
    # 9.01 is 9.1 as System.Version.
    assert host.wait(start(host, "report_version", version="9.01"))["output"] == "9.01"
    # (The Functions host drops a blank query parameter before the app sees it, so the
    # empty version goes to the management API itself.)
    empty = requests.post(
        f"{host.rpc}orchestrators/report_version", params={"version": ""}, timeout=10
    )
    ids = [start(host, "report_version", version=v) for v in ("9.0", "10.0")]
    for version, instance_id in zip(("9.0", "10.0", ""), [*ids, empty.json()["id"]], strict=True):
        final = host.wait(instance_id)
        assert final["runtimeStatus"] == "Failed", (version, final)
        assert f"version '{version}' does not match" in final["output"]
        assert "defaultVersion '9.1'" in final["output"]


def test_a_failed_sub_orchestration_version_fails_the_parent(strict_fail: HostClient) -> None:
    host = strict_fail
    final = host.wait(start(host, "versioned_parent", {"child_version": "9.2"}))
    assert final["runtimeStatus"] == "Failed"
    assert "version '9.2' does not match" in final["output"]


# -- host.json refused -------------------------------------------------------------------


def test_the_host_refuses_an_unknown_strategy_at_start(tmp_path: Path) -> None:
    app = app_with(tmp_path, defaultVersion="1.0", versionMatchStrategy="Newest")
    with pytest.raises(RuntimeError) as refused:
        launch(app, tmp_path / "state")
    assert "versionMatchStrategy must be one of None, Strict, CurrentOrOlder" in str(refused.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"version_match_strategy": "Latest"},
        {"version_failure_strategy": "Retry"},
        {"version_failure_strategy": 1},
        {"default_version": 1.0},
    ],
)
def test_hub_settings_refuse_what_the_extension_cannot_bind(settings: dict) -> None:
    with pytest.raises(ValueError, match=r"host\.json extensions\.durableTask"):
        HubSettings("Hub", **settings)


def test_hub_settings_defaults_and_case_insensitive_names() -> None:
    assert HubSettings("Hub").versioning == VersioningSettings(None, "CurrentOrOlder", "Reject")
    hub = HubSettings(
        "Hub",
        default_version="1.0",
        version_match_strategy="strict",
        version_failure_strategy="FAIL",
    )
    assert hub.versioning == VersioningSettings("1.0", "Strict", "Fail")


# -- the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        (None, "", 0),
        ("", None, 0),
        ("", "0.0", -1),
        (None, "a", -1),
        ("1.0", "", 1),
        ("1.10", "1.9", 1),  # numeric, not text
        ("9.01", "9.1", 0),
        ("1.0", "1.0.0", -1),  # System.Version: an absent component is below 0
        ("1.2.3.4", "1.2.3.5", -1),
        ("beta", "ALPHA", 1),  # not versions: case-insensitive text
        ("Preview", "preview", 0),
        ("4.5.6-preview", "4.5.6", 1),  # one is not a System.Version: text
        ("2", "10", 1),  # a single number is not a System.Version: text
    ],
)
def test_compare_versions(a: str | None, b: str | None, order: int) -> None:
    assert compare_versions(a, b) == order


def test_match_strategies() -> None:
    current = VersioningSettings("2.0")
    assert current.mismatch("2.0") is None
    assert current.mismatch("1.0") is None
    assert current.mismatch("") is None
    assert "newer" in (current.mismatch("2.0.1") or "")
    strict = VersioningSettings("2.0", "Strict")
    assert strict.mismatch("2.0") is None
    assert strict.mismatch("1.0") and strict.mismatch("3.0") and strict.mismatch("")
    assert VersioningSettings("2.0", "None").mismatch("3.0") is None
    # Without a defaultVersion nothing is checked.
    assert VersioningSettings(None, "Strict").mismatch("3.0") is None
    assert VersioningSettings("", "Strict").mismatch("3.0") is None


def test_new_instance_version() -> None:
    assert VersioningSettings().new_instance_version(None) == ""
    assert VersioningSettings("2.0").new_instance_version(None) == "2.0"
    assert VersioningSettings("2.0").new_instance_version("1.0") == "1.0"
    assert VersioningSettings("2.0").new_instance_version("") == ""


def test_a_state_file_from_before_versioning_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "durable.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE instances (
            instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, execution_id TEXT NOT NULL,
            runtime_status TEXT NOT NULL, input TEXT, output TEXT, custom_status TEXT,
            created_time TEXT NOT NULL, last_updated_time TEXT NOT NULL,
            parent_instance_id TEXT, parent_execution_id TEXT, parent_task_id INTEGER,
            suspended INTEGER NOT NULL DEFAULT 0, replay TEXT NOT NULL DEFAULT '{}'
        );
        INSERT INTO instances (instance_id, name, execution_id, runtime_status,
            created_time, last_updated_time)
            VALUES ('old', 'sequence', 'e1', 'Running', '2024-01-01', '2024-01-01');
        """
    )
    old.commit()
    old.close()
    store = DurableStore(path)
    try:
        instance = store.get_instance("old")
        assert instance is not None and instance.version == ""
        instance.version = "1.0"
        store.create_instance(instance, {"EventType": 0}, frozenset({"Running"}))
        assert store.get_instance("old").version == "1.0"
    finally:
        store.close()
