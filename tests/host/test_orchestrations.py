"""Durable features, end to end through a running host and the real SDK."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from .conftest import HostClient


def test_sdk_client_round_trip_waits_for_the_output(host: HostClient) -> None:
    r = host.api("POST", "run/sequence", json=["ann", "bob"])
    assert r.status_code == 200, r.text
    assert r.json() == ["hello ann", "hello bob"]


def test_status_reports_custom_status_input_output_and_history(host: HostClient) -> None:
    started = host.start("sequence", ["x", "y", "z"])
    final = host.wait(started["id"])
    assert final["runtimeStatus"] == "Completed"
    assert final["input"] == ["x", "y", "z"]
    assert final["output"] == ["hello x", "hello y", "hello z"]
    assert final["customStatus"] == {"done": 3}

    r = host.status(started["id"], showHistory="true", showHistoryOutput="true")
    assert r.status_code == 200
    kinds = [e["EventType"] for e in r.json()["historyEvents"]]
    assert kinds[0] == "ExecutionStarted"
    # As the extension shows it: each TaskScheduled folded into its TaskCompleted.
    assert kinds.count("TaskScheduled") == 0 and kinds.count("TaskCompleted") == 3
    assert kinds[-1] == "ExecutionCompleted"
    results = [e["Result"] for e in r.json()["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert results == ["hello x", "hello y", "hello z"]


def test_status_through_the_sdk_client_binding(host: HostClient) -> None:
    started = host.start("sequence", ["q"])
    host.wait(started["id"])
    r = host.api("GET", f"status/{started['id']}")
    assert r.status_code == 200
    body = r.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["hello q"]
    assert body["customStatus"] == {"done": 1}


def test_check_status_response_urls_work_with_the_system_key(host: HostClient) -> None:
    started = host.start("sequence", ["w"])
    host.wait(started["id"])
    r = requests.get(started["statusQueryGetUri"], timeout=10)
    assert r.status_code == 200
    assert r.json()["output"] == ["hello w"]
    unkeyed = started["statusQueryGetUri"].split("?")[0]
    assert requests.get(unkeyed, timeout=10).status_code == 401


def test_fan_out_fan_in_with_async_activities(host: HostClient) -> None:
    final = host.wait(host.start("fan_out", 20)["id"])
    assert final["output"] == sum(i * i for i in range(20))


def test_retry_succeeds_after_failures_with_the_hosts_history_shape(host: HostClient) -> None:
    tag = uuid.uuid4().hex
    spec = {"tag": tag, "fail_times": 2, "attempts": 4}
    started = host.start("retrying", spec)
    final = host.wait(started["id"])
    assert final["output"] == {"ok": "succeeded on attempt 3"}
    events = host.status(started["id"], showHistory="true").json()["historyEvents"]
    kinds = [e["EventType"] for e in events if e["EventType"] != "ExecutionStarted"]
    # Each attempt's TaskScheduled is folded into its TaskFailed / TaskCompleted.
    assert kinds == [
        "TaskFailed",
        "TimerCreated",
        "TimerFired",
        "TaskFailed",
        "TimerCreated",
        "TimerFired",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    attempts = [e for e in events if e["EventType"] in ("TaskFailed", "TaskCompleted")]
    # Every attempt had its own TaskScheduled (its name and time were folded in).
    assert [e["FunctionName"] for e in attempts] == ["flaky"] * 3
    assert all("ScheduledTime" in e for e in attempts)


def test_retry_that_exhausts_fails_the_task_with_the_activity_reason(host: HostClient) -> None:
    spec = {"tag": uuid.uuid4().hex, "fail_times": 10, "attempts": 3}
    started = host.start("retrying", spec)
    final = host.wait(started["id"])
    assert final["runtimeStatus"] == "Completed"
    assert (
        "Activity function 'flaky' failed:  RuntimeError: attempt 3 failed"
        in (final["output"]["error"])
    )
    events = host.status(started["id"], showHistory="true").json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    # Three attempts, each followed by a timer: DTFx's extra timer after the last one.
    assert kinds.count("TaskFailed") == 3
    assert kinds.count("TimerFired") == 3
    assert kinds[-3:] == ["TimerCreated", "TimerFired", "ExecutionCompleted"]


def test_timer_then_external_event_wins_and_cancels_the_timeout(host: HostClient) -> None:
    started = host.start("timer_then_event", {"sleep": 0.3, "timeout": 30})
    # Raised before the orchestrator waits for it: the event is buffered.
    r = requests.post(
        started["sendEventPostUri"].replace("{eventName}", "approve"), json="yes", timeout=10
    )
    assert r.status_code == 202
    t0 = time.monotonic()
    final = host.wait(started["id"])
    assert final["output"] == {"approved": "yes"}
    assert time.monotonic() - t0 < 10


def test_event_raised_by_the_python_client_arrives_as_a_string(host: HostClient) -> None:
    """The SDK client double-encodes event data; in Azure the orchestrator gets a str."""
    started = host.start("timer_then_event", {"sleep": 0, "timeout": 30})
    r = host.api("POST", f"raise/{started['id']}/approve", json={"x": 1})
    assert r.status_code == 202
    assert host.wait(started["id"])["output"] == {"approved": '{"x": 1}'}


def test_timer_fires_on_the_real_clock_when_no_event_comes(host: HostClient) -> None:
    t0 = time.monotonic()
    final = host.wait(host.start("timer_then_event", {"sleep": 0.2, "timeout": 0.5})["id"])
    elapsed = time.monotonic() - t0
    assert final["output"] == {"approved": None}
    assert 0.7 <= elapsed < 5


def test_continue_as_new_restarts_with_the_new_input(host: HostClient) -> None:
    started = host.start("counter_loop", {"n": 0, "target": 4})
    final = host.wait(started["id"])
    assert final["output"] == 4
    assert final["input"] == {"n": 4, "target": 4}
    kinds = [
        e["EventType"]
        for e in host.status(started["id"], showHistory="true").json()["historyEvents"]
    ]
    # History holds the last execution only.
    assert kinds == ["ExecutionStarted", "ExecutionCompleted"]


def test_entities_called_and_signalled_from_an_orchestration(host: HostClient) -> None:
    key = uuid.uuid4().hex
    final = host.wait(host.start("uses_entity", key)["id"])
    assert final["runtimeStatus"] == "Completed"
    # The signal (add 5) was sent before the call (add 2), and runs first.
    assert final["output"]["value"] == 7
    assert "entity refused" in final["output"]["failed"]
    r = requests.get(f"{host.rpc}entities/counter/{key}", timeout=10)
    assert r.status_code == 200 and r.json() == 7


def test_entity_signal_and_read_through_the_management_api(host: HostClient) -> None:
    key = uuid.uuid4().hex
    assert requests.get(f"{host.rpc}entities/counter/{key}", timeout=10).status_code == 404
    r = requests.post(f"{host.rpc}entities/counter/{key}", params={"op": "add"}, json=3, timeout=10)
    assert r.status_code == 202
    host.wait_for(
        lambda: requests.get(f"{host.rpc}entities/counter/{key}", timeout=10).status_code == 200
    )
    assert requests.get(f"{host.rpc}entities/counter/{key}", timeout=10).json() == 3


def test_orchestrator_failure_carries_its_reason(host: HostClient) -> None:
    final = host.wait(host.start("failing")["id"])
    assert final["runtimeStatus"] == "Failed"
    assert final["output"] == "Orchestrator function 'failing' failed: orchestrator gave up"


def test_sub_orchestration_result_returns_to_the_parent(host: HostClient) -> None:
    final = host.wait(host.start("parent")["id"])
    assert final["output"] == {"child": ["hello p", "hello q"]}


def test_fifty_orchestrations_progress_in_parallel(host: HostClient, counters: Path) -> None:
    """50 instances whose activities each sleep 0.5 s finish far faster than in series."""
    tag = uuid.uuid4().hex
    t0 = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        ids = list(
            pool.map(
                lambda i: host.start("slow_steps", {"tag": f"{tag}-{i}", "seconds": 0.5})["id"],
                range(50),
            )
        )
    finals = [host.wait(i, timeout=120) for i in ids]
    elapsed = time.monotonic() - t0
    assert all(f["runtimeStatus"] == "Completed" for f in finals)
    # In series this is 50 s; 16 activity workers make it about 7 s.
    assert elapsed < 25, elapsed
