"""Durable state survives a crashed host: kill -9, restart, every instance resumes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .conftest import HostClient, start_sample_host


@pytest.fixture
def fresh_host(tmp_path: Path):
    """A host of its own (this test kills it), and a way to start it again on the same state."""
    counters = tmp_path / "counters"
    counters.mkdir()
    state = tmp_path / "state"
    services = []

    def launch() -> HostClient:
        service = start_sample_host(state, counters)
        services.append(service)
        return HostClient(service)

    yield launch, counters
    for service in services:
        service.stop()


def test_kill_during_an_activity_reruns_only_that_activity(fresh_host) -> None:
    launch, counters = fresh_host
    host = launch()
    tag = uuid.uuid4().hex
    started = host.start("slow_steps", {"tag": tag, "seconds": 1.0})
    # Wait until step 2 is running: step 1 has completed and been recorded.
    host.wait_for(lambda: (counters / f"slow-{tag}-2").exists())
    host.service.kill()

    host = launch()
    final = host.wait(started["id"], timeout=30)
    assert final["runtimeStatus"] == "Completed"
    first, second = final["output"]
    assert first == {"step": 1, "runs": 1}, "a completed activity must not run again"
    assert second == {"step": 2, "runs": 2}, "the interrupted activity runs again"


def test_durable_timers_and_pending_instances_survive_a_restart(fresh_host) -> None:
    launch, _ = fresh_host
    host = launch()
    timed = host.start("timer_then_event", {"sleep": 0.5, "timeout": 1.0})
    waiting = host.start("timer_then_event", {"sleep": 0.1, "timeout": 60})
    host.wait_for(lambda: host.status(waiting["id"]).json()["runtimeStatus"] == "Running")
    host.service.kill()

    host = launch()
    assert host.wait(timed["id"])["output"] == {"approved": None}
    r = host.http.post(f"{host.rpc}instances/{waiting['id']}/raiseEvent/approve", json="late")
    assert r.status_code == 202
    assert host.wait(waiting["id"])["output"] == {"approved": "late"}
