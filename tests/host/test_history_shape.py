"""``showHistory=true`` as the extension's ``DurableClient`` shapes it (docs/host-emulator.md)."""

from __future__ import annotations

import json
import re
import uuid

from emulator.host.management_api import _scheduled_time

from .conftest import HostClient

SCHEDULED_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?\+00:00$")


def history(host: HostClient, instance_id: str, **query: str) -> list[dict]:
    body = host.status(instance_id, showHistory="true", **query).json()
    return body["historyEvents"]


def test_completed_activities_fold_their_task_scheduled(host: HostClient) -> None:
    started = host.start("sequence", ["x", "y"])
    assert host.wait(started["id"])["runtimeStatus"] == "Completed"
    events = history(host, started["id"], showHistoryOutput="true")
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    for e in events:
        assert not {"EventId", "IsPlayed"} & e.keys()
    first = events[0]
    assert list(first) == [
        "EventType",
        "Input",
        "Correlation",
        "ParentTraceContext",
        "ScheduledStartTime",
        "Generation",
        "Timestamp",
        "FunctionName",
    ]
    assert first["FunctionName"] == "sequence"
    # History inputs stay JSON text; only results are parsed.
    assert json.loads(first["Input"]) == ["x", "y"]
    x, y = events[1], events[2]
    assert list(x) == ["EventType", "Result", "Timestamp", "ScheduledTime", "FunctionName", "Input"]
    assert (x["Result"], x["FunctionName"], x["Input"]) == ("hello x", "greet", '"x"')
    assert y["Result"] == "hello y"
    assert SCHEDULED_TIME.match(x["ScheduledTime"]), x["ScheduledTime"]
    completed = events[3]
    assert completed["OrchestrationStatus"] == "Completed"
    assert completed["Result"] == ["hello x", "hello y"]
    assert completed["FailureDetails"] is None


def test_results_only_with_show_history_output(host: HostClient) -> None:
    started = host.start("sequence", ["r"])
    host.wait(started["id"])
    events = history(host, started["id"])
    assert [e["EventType"] for e in events][-2:] == ["TaskCompleted", "ExecutionCompleted"]
    assert all("Result" not in e for e in events)


def test_show_input_false_drops_every_input(host: HostClient) -> None:
    started = host.start("sequence", ["s"])
    host.wait(started["id"])
    body = host.status(started["id"], showHistory="true", showInput="false").json()
    assert body["input"] is None
    assert all("Input" not in e for e in body["historyEvents"])
    # showInput defaults to true.
    assert host.status(started["id"]).json()["input"] == ["s"]


def test_history_events_key_only_when_asked(host: HostClient) -> None:
    started = host.start("sequence", ["k"])
    host.wait(started["id"])
    assert "historyEvents" not in host.status(started["id"]).json()
    assert "historyEvents" not in host.status(started["id"], showHistory="false").json()


def test_a_pending_activity_keeps_its_task_scheduled(host: HostClient) -> None:
    spec = {"tag": uuid.uuid4().hex, "seconds": 1.5}
    started = host.start("slow_steps", spec)

    def scheduled() -> list[dict]:
        body = host.status(started["id"], showHistory="true").json()
        found = body.get("historyEvents") or []
        return [e for e in found if e["EventType"] == "TaskScheduled"]

    host.wait_for(lambda: bool(scheduled()))
    pending = scheduled()[0]
    # Not folded: its raw key Name stays (no FunctionName), with no EventId.
    assert list(pending) == ["EventType", "Name", "Input", "Timestamp"]
    assert pending["Name"] == "slow"
    assert json.loads(pending["Input"])["step"] == 1
    host.wait(started["id"])
    kinds = [e["EventType"] for e in history(host, started["id"])]
    assert "TaskScheduled" not in kinds


def test_sub_orchestration_created_is_folded_into_its_completion(host: HostClient) -> None:
    started = host.start("parent")
    host.wait(started["id"])
    events = history(host, started["id"], showHistoryOutput="true")
    kinds = [e["EventType"] for e in events]
    assert kinds == ["ExecutionStarted", "SubOrchestrationInstanceCompleted", "ExecutionCompleted"]
    child = events[1]
    assert child["FunctionName"] == "sequence"
    assert json.loads(child["Input"]) == ["p", "q"]
    assert child["Result"] == ["hello p", "hello q"]
    assert SCHEDULED_TIME.match(child["ScheduledTime"])
    assert not {"InstanceId", "TaskScheduledId", "Version"} & child.keys()


def test_timers_failures_and_failed_status(host: HostClient) -> None:
    started = host.start("retrying", {"tag": uuid.uuid4().hex, "fail_times": 1, "attempts": 2})
    host.wait(started["id"])
    events = history(host, started["id"])
    failed = next(e for e in events if e["EventType"] == "TaskFailed")
    assert "attempt 1 failed" in failed["Reason"]
    assert "Details" in failed and "TaskScheduledId" not in failed
    assert failed["FunctionName"] == "flaky"
    fired = next(e for e in events if e["EventType"] == "TimerFired")
    assert list(fired) == ["EventType", "FireAt", "Timestamp"]
    created = next(e for e in events if e["EventType"] == "TimerCreated")
    assert list(created) == ["EventType", "FireAt", "Timestamp"]

    failing = host.start("failing")
    host.wait(failing["id"])
    ended = history(host, failing["id"], showHistoryOutput="true")[-1]
    assert ended["OrchestrationStatus"] == "Failed"
    assert "orchestrator gave up" in ended["Result"]


def test_scheduled_time_is_written_like_newtonsoft_on_a_utc_host() -> None:
    assert _scheduled_time("2024-05-01T10:00:01.234500Z") == "2024-05-01T10:00:01.2345+00:00"
    assert _scheduled_time("2024-05-01T10:00:01.000000Z") == "2024-05-01T10:00:01+00:00"
