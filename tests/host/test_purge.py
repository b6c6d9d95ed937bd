"""Purge by filter: DELETE instances/?createdTimeFrom=...&runtimeStatus=..., as on Azure Storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import HostClient, start_sample_host

FINISHED = "Completed,Failed,Terminated"


def now_iso() -> str:
    """Now, as the Python SDK writes times into the query."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def started_and_waited(host: HostClient, name: str, payload: object) -> str:
    instance_id = host.start(name, payload)["id"]
    host.wait(instance_id)
    return instance_id


def running(host: HostClient) -> str:
    """An instance that waits for an event (terminated by the test when done)."""
    instance_id = host.start("timer_then_event", {"sleep": 0, "timeout": 600})["id"]
    host.wait_for(lambda: host.status(instance_id).json()["runtimeStatus"] == "Running")
    return instance_id


def test_purge_by_filter_deletes_finished_instances_of_the_window_only(host: HostClient) -> None:
    before = started_and_waited(host, "sequence", ["a"])
    created_from = now_iso()
    done = [started_and_waited(host, "sequence", ["b"]), started_and_waited(host, "failing", None)]
    still_running = running(host)
    created_to = now_iso()
    after = started_and_waited(host, "sequence", ["c"])
    try:
        r = requests.delete(
            f"{host.rpc}instances/",
            params={
                "createdTimeFrom": created_from,
                "createdTimeTo": created_to,
                "runtimeStatus": FINISHED,
            },
        )
        assert r.status_code == 200 and r.json() == {"instancesDeleted": 2}
        assert [host.status(i).status_code for i in done] == [404, 404]
        # Never a running instance when finished statuses are named; nothing outside the window.
        assert host.status(still_running).status_code == 202
        assert host.status(before).status_code == 200
        assert host.status(after).status_code == 200
        again = requests.delete(
            f"{host.rpc}instances",
            params={
                "createdTimeFrom": created_from,
                "createdTimeTo": created_to,
                "runtimeStatus": FINISHED,
            },
        )
        assert again.status_code == 404 and again.content == b""
    finally:
        requests.post(f"{host.rpc}instances/{still_running}/terminate")


def test_purge_by_filter_through_the_python_sdk(host: HostClient) -> None:
    created_from = now_iso()
    ids = [started_and_waited(host, "sequence", ["x"]) for _ in range(2)]
    spec = {"from": created_from, "to": now_iso(), "statuses": ["Completed", "Failed"]}
    r = host.api("POST", "purge", json=spec)
    assert r.status_code == 200 and r.json() == {"instancesDeleted": 2}
    assert [host.status(i).status_code for i in ids] == [404, 404]
    # The SDK reads the extension's 404 (nothing matched) as none deleted.
    assert host.api("POST", "purge", json=spec).json() == {"instancesDeleted": 0}


def test_purge_by_filter_needs_created_time_from(host: HostClient) -> None:
    for params in ({}, {"createdTimeFrom": "yesterday"}):
        r = requests.delete(f"{host.rpc}instances/", params={**params, "runtimeStatus": FINISHED})
        assert r.status_code == 400
        assert r.json() == "Please provide value for 'createdTimeFrom' parameter."


def test_purge_by_filter_webhook_needs_the_system_key(host: HostClient) -> None:
    url = f"{host.url}/runtime/webhooks/durabletask/instances/"
    query = {"createdTimeFrom": now_iso(), "runtimeStatus": FINISHED}
    assert requests.delete(url, params=query).status_code == 401
    keyed = {**query, "taskHub": "SampleHub", "code": host.keys["durabletask_extension"]}
    assert requests.delete(url, params=keyed).status_code == 404


@pytest.fixture
def own_host(tmp_path: Path) -> Iterator[HostClient]:
    """A sample-app host with nothing else in its state."""
    service = start_sample_host(tmp_path / "state", tmp_path)
    try:
        yield HostClient(service)
    finally:
        service.stop()


@pytest.mark.parametrize("runtime_status", [None, "Running,Pending"])
def test_without_a_finished_status_every_instance_and_entity_is_purged(
    own_host: HostClient, runtime_status: str | None
) -> None:
    # DurableTask.AzureStorage keeps only finished statuses from the filter and,
    # when none is left, filters on none: running instances and entities go too.
    created_from = now_iso()
    still_running = running(own_host)
    with_entity = started_and_waited(own_host, "uses_entity", "k")
    assert requests.get(f"{own_host.rpc}entities/counter/k").status_code == 200
    params = {"createdTimeFrom": created_from}
    if runtime_status:
        params["runtimeStatus"] = runtime_status
    r = requests.delete(f"{own_host.rpc}instances/", params=params)
    assert r.status_code == 200 and r.json() == {"instancesDeleted": 3}
    assert own_host.status(still_running).status_code == 404
    assert own_host.status(with_entity).status_code == 404
    assert requests.get(f"{own_host.rpc}entities/counter/k").status_code == 404
