"""Timer triggers: run at their schedule in Microsoft's worker, as Azure's host runs them."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.host.schedules import parse_cron
from emulator.host.timers import UNSET, ScheduleMonitor, ScheduleStatus
from emulator.launch import ServiceProcess, start_service

from .conftest import HostClient, run_host_expecting_exit

TIMER_APP = Path(__file__).parent / "timer_app"
REFUSED_APPS = Path(__file__).parent / "refused_apps"
# What the yearly timer's monitor recorded before the host (re)started: its
# next occurrence, 1 January 2020, has passed.
MISSED_STATUS = {
    "Last": "2019-01-01T00:00:00+00:00",
    "Next": "2020-01-01T00:00:00+00:00",
    "LastUpdated": "2019-01-01T00:00:00+00:00",
}


def runs(folder: Path, name: str) -> list[dict[str, Any]]:
    """What each invocation of timer ``name`` received, in order."""
    path = folder / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def poll(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_timer_runs_at_its_schedule_with_timer_info_and_a_durable_client(
    host: HostClient, counters: Path
) -> None:
    assert "tick" in host.service.info["functions"]
    poll(lambda: len(runs(counters, "tick")) >= 2)
    first = runs(counters, "tick")[0]
    # TimerInfo as the host serializes it; the monitor is off for a sub-minute
    # schedule, so ScheduleStatus is null and the SDK shows an empty dict. The
    # durable client reached the management API (an unknown instance: no status).
    assert first == {
        "past_due": False,
        "schedule": {"AdjustForDST": True},
        "schedule_status": {},
        "probe": None,
    }


@pytest.fixture(scope="module")
def timer_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, Path]]:
    """The timer app, started on a state whose yearly timer missed its last occurrence."""
    state = tmp_path_factory.mktemp("timer-state")
    out = tmp_path_factory.mktemp("timer-out")
    status = state / "timers" / "Host.Functions.yearly" / "status"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps(MISSED_STATUS))
    service = start_service(
        ["host", "--app-dir", str(TIMER_APP), "--state", str(state), "--port", "0"],
        log_path=state / "host.log",
        env={"TIMER_APP_OUT": str(out), "TIMER_APP_SCHEDULE": "*/1 * * * * *"},
    )
    try:
        yield service, out
    finally:
        service.stop()


def test_schedule_from_an_app_setting(timer_host: tuple[ServiceProcess, Path]) -> None:
    _, out = timer_host
    poll(lambda: len(runs(out, "from_setting")) >= 2)


def test_run_on_startup_runs_once_at_start(timer_host: tuple[ServiceProcess, Path]) -> None:
    _, out = timer_host
    poll(lambda: len(runs(out, "on_startup")) >= 1 and len(runs(out, "from_setting")) >= 2)
    assert runs(out, "on_startup") == [
        {"past_due": False, "schedule": {"AdjustForDST": True}, "schedule_status": {}}
    ]


def test_a_missed_occurrence_runs_at_start_as_past_due(
    timer_host: tuple[ServiceProcess, Path],
) -> None:
    service, out = timer_host
    poll(lambda: len(runs(out, "yearly")) >= 1)
    assert runs(out, "yearly") == [
        {"past_due": True, "schedule": {"AdjustForDST": True}, "schedule_status": MISSED_STATUS}
    ]
    # The monitor recorded the run: next occurrence is the coming 1 January.
    state = Path(service.info["keysFile"]).parent
    status = json.loads((state / "timers" / "Host.Functions.yearly" / "status").read_text())
    now = dt.datetime.now(dt.UTC)
    assert status["Next"] == f"{now.year + 1}-01-01T00:00:00+00:00"
    assert status["Last"] == status["LastUpdated"] and status["Last"].startswith(str(now.year))


def test_a_failing_timer_keeps_its_schedule(timer_host: tuple[ServiceProcess, Path]) -> None:
    service, out = timer_host
    poll(lambda: len(runs(out, "failing")) >= 2)
    assert "Executed 'Functions.failing' (Failed)" in service.log_path.read_text()


def test_a_schedule_that_is_not_ncrontab_refuses_the_app(tmp_path: Path) -> None:
    result = run_host_expecting_exit(REFUSED_APPS / "bad_schedule", tmp_path)
    assert result.returncode == 1
    assert "the host could not index the app" in result.stderr
    assert (
        "Error indexing method 'Functions.nightly': The schedule expression '0 0 25 * * *' "
        "was not recognized as a valid cron expression or timespan string." in result.stderr
    )
    assert '"ready"' not in result.stdout


def test_a_schedule_naming_a_missing_setting_refuses_the_app(tmp_path: Path) -> None:
    result = run_host_expecting_exit(TIMER_APP, tmp_path / "state", TIMER_APP_OUT=str(tmp_path))
    assert result.returncode == 1
    assert "'%TIMER_APP_SCHEDULE%' does not resolve to a value." in result.stderr


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_a_missed_occurrence_of_the_recorded_schedule_is_past_due(tmp_path: Path) -> None:
    monitor = ScheduleMonitor(tmp_path)
    hourly = parse_cron("0 0 * * * *")
    status = ScheduleStatus(
        _at("2024-05-01T10:00:00"), _at("2024-05-01T11:00:00"), _at("2024-05-01T10:00:00")
    )
    late = monitor.check_past_due("t", _at("2024-05-01T11:30:00"), hourly, status)
    assert late == dt.timedelta(minutes=30)


def test_a_changed_schedule_is_not_past_due_and_is_recorded_anew(tmp_path: Path) -> None:
    monitor = ScheduleMonitor(tmp_path)
    daily = parse_cron("0 0 0 * * *")
    # Recorded under an hourly schedule; the app now runs daily.
    status = ScheduleStatus(
        _at("2024-05-01T10:00:00"), _at("2024-05-01T11:00:00"), _at("2024-05-01T10:00:00")
    )
    now = _at("2024-05-03T00:30:00")
    assert monitor.check_past_due("t", now, daily, status) == dt.timedelta(0)
    assert monitor.get_status("t") == ScheduleStatus(UNSET, _at("2024-05-04T00:00:00"), now)


def test_a_new_timer_records_its_first_occurrence(tmp_path: Path) -> None:
    monitor = ScheduleMonitor(tmp_path)
    now = _at("2024-05-01T10:00:00.5")
    assert monitor.check_past_due("t", now, parse_cron("0 0 * * * *"), None) == dt.timedelta(0)
    assert monitor.get_status("t") == ScheduleStatus(UNSET, _at("2024-05-01T11:00:00"), now)
    assert json.loads((tmp_path / "t" / "status").read_text()) == {
        "Last": "0001-01-01T00:00:00+00:00",
        "Next": "2024-05-01T11:00:00+00:00",
        "LastUpdated": "2024-05-01T10:00:00.5+00:00",
    }
