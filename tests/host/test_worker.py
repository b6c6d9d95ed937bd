"""The host runs apps in Microsoft's Python worker, and refuses what that worker refuses."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import requests

from emulator.launch import REPO_ROOT, start_service
from tests.app_functions import declared_function_names

from .conftest import SAMPLE_APP, HostClient, run_host_expecting_exit, start_sample_host

REFUSED_APPS = Path(__file__).parent / "refused_apps"


@pytest.mark.parametrize(
    ("app", "worker_message"),
    [
        (
            "pep585_input",
            "cannot load the takes_a_dict function: binding request has invalid non-type "
            "annotation dict[str, typing.Any]",
        ),
        (
            "context_name",
            'cannot load the orchestrate function: the "context" parameter is expected to be '
            "of type azure.functions.Context",
        ),
    ],
)
def test_an_app_the_worker_cannot_index_is_refused_at_start(
    app: str, worker_message: str, tmp_path: Path
) -> None:
    result = run_host_expecting_exit(REFUSED_APPS / app, tmp_path)
    assert result.returncode == 1
    assert "the worker could not load the app" in result.stderr
    assert worker_message in result.stderr
    assert '"ready"' not in result.stdout


def test_the_repository_app_loads_every_function_it_declares(tmp_path: Path) -> None:
    declared = list(declared_function_names())  # the app as Python sees it
    service = start_service(
        ["host", "--app-dir", str(REPO_ROOT), "--state", str(tmp_path), "--port", "0"],
        log_path=tmp_path / "host.log",
    )
    try:
        assert sorted(service.info["functions"]) == declared
        assert len(declared) >= 13
    finally:
        service.stop()


def test_app_dir_wins_over_a_function_app_on_the_hosts_path(host: HostClient) -> None:
    # The launcher puts the repository (with its own function_app.py) on PYTHONPATH;
    # the host must still run the sample app of --app-dir.
    assert "echo" in host.service.info["functions"]
    assert "move_ip" not in host.service.info["functions"]


def test_worker_logs_reach_the_host_log_with_the_invocation_id(host: HostClient) -> None:
    marker = os.urandom(6).hex()
    assert host.http.get(f"{host.url}/api/pid", params={"marker": marker}, timeout=10).ok
    pattern = re.compile(
        rf"\[worker \d+ invocation [0-9a-f-]{{36}}\] root: pid route marker {marker}"
    )
    host.wait_for(lambda: bool(pattern.search(host.service.log_path.read_text())))


@pytest.fixture
def three_workers(tmp_path: Path):
    counters = tmp_path / "counters"
    counters.mkdir()
    service = start_sample_host(
        tmp_path / "state", counters, env={"FUNCTIONS_WORKER_PROCESS_COUNT": "3"}
    )
    yield HostClient(service)
    service.stop()


def test_invocations_are_spread_over_the_worker_processes(three_workers: HostClient) -> None:
    pids = three_workers.service.info["workerPids"]
    assert len(pids) == 3
    seen = {
        int(three_workers.http.get(f"{three_workers.url}/api/pid", timeout=10).text)
        for _ in range(6)
    }
    assert seen == set(pids)


def test_activities_under_load_are_spread_over_the_worker_processes(
    three_workers: HostClient,
) -> None:
    instance = three_workers.start("spread", {"n": 12, "seconds": 0.3})["id"]
    status = three_workers.wait(instance)
    assert status["runtimeStatus"] == "Completed", status
    ran = status["output"]
    assert {r["pid"] for r in ran} == set(three_workers.service.info["workerPids"])
    # They ran at once, not one after another (12 x 0.3 s).
    assert max(r["ended"] for r in ran) - min(r["started"] for r in ran) < 2.5


def test_max_concurrent_activity_functions_caps_activities_at_once(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(SAMPLE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    settings = json.loads((app / "host.json").read_text())
    settings["extensions"]["durableTask"]["maxConcurrentActivityFunctions"] = 2
    (app / "host.json").write_text(json.dumps(settings))
    counters = tmp_path / "counters"
    counters.mkdir()
    service = start_sample_host(tmp_path / "state", counters, app_dir=app)
    try:
        client = HostClient(service)
        status = client.wait(client.start("spread", {"n": 6, "seconds": 0.3})["id"])
    finally:
        service.stop()
    assert status["runtimeStatus"] == "Completed", status
    ran = status["output"]
    overlaps = [
        sum(1 for other in ran if other["started"] <= r["started"] < other["ended"]) for r in ran
    ]
    assert max(overlaps) == 2


def test_a_crashed_worker_fails_its_invocation_and_is_replaced(three_workers: HostClient) -> None:
    url = three_workers.url
    assert requests.get(f"{url}/api/crash", timeout=30).status_code == 500
    # Every later request is served, by the survivors or the replacement.
    answers = [requests.get(f"{url}/api/pid", timeout=30) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    started = three_workers.service.info["workerPids"]
    assert len({int(a.text) for a in answers} - set(started)) == 1


def test_durable_work_runs_in_the_worker(host: HostClient) -> None:
    # An orchestration, its activities and an entity, all invoked over FunctionRpc.
    status = host.wait(host.start("uses_entity", os.urandom(4).hex())["id"])
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["value"] == 7


@pytest.mark.parametrize("value", ["11", "two"])
def test_a_bad_worker_process_count_is_refused(value: str, tmp_path: Path) -> None:
    result = run_host_expecting_exit(SAMPLE_APP, tmp_path, FUNCTIONS_WORKER_PROCESS_COUNT=value)
    assert result.returncode == 2
    assert "FUNCTIONS_WORKER_PROCESS_COUNT" in result.stderr
