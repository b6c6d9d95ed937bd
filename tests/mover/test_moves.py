"""Acquire and release through the API: outcomes, ARM writes, serialization, audit."""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulator.stack import AUDIENCE

from .conftest import FINISHED, IP, NIC, Mover


@pytest.fixture(params=["async", "sync"])
def nic_update_mode(request: pytest.FixtureRequest) -> str:
    """Every move test runs with NIC updates answered Updating, then answered in the PUT."""
    return request.param


def _without_etags(value):
    if isinstance(value, dict):
        return {k: _without_etags(v) for k, v in value.items() if k != "etag"}
    if isinstance(value, list):
        return [_without_etags(v) for v in value]
    return value


def _settings(nic: dict) -> dict:
    """Everything of a NIC that a move must not change (etags change on every write)."""
    nic = _without_etags(nic)
    props = {
        k: v
        for k, v in nic["properties"].items()
        if k not in ("ipConfigurations", "provisioningState", "resourceGuid")
    }
    primary = [c for c in nic["properties"]["ipConfigurations"] if c["properties"].get("primary")]
    return {"tags": nic.get("tags"), "props": props, "primary": primary}


def test_acquire_puts_the_ip_on_the_callers_nic_only(mover: Mover) -> None:
    record = mover.move("acquire", "server01", context={"event": "START", "group": "failover"})
    assert record["status"] == "succeeded", record
    mover.assert_only_on("server01")
    assert [s["name"] for s in record["steps"]] == ["find_holder", "add_ip_config", "verify"]
    assert record["context"] == {"event": "START", "group": "failover"}
    assert record["toNic"].endswith(NIC["server01"]) and record["fromNics"] == []

    record = mover.move("acquire", "server02", context={"event": "FAILOVER"})
    assert record["status"] == "succeeded", record
    mover.assert_only_on("server02")
    assert [s["name"] for s in record["steps"]] == [
        "find_holder",
        "remove_ip_config",
        "add_ip_config",
        "verify",
    ]
    assert record["fromNics"][0].endswith(NIC["server01"])
    assert all(s["armOperationId"] for s in record["steps"] if s["name"].endswith("config"))


def test_acquire_when_already_held_writes_nothing(mover: Mover) -> None:
    mover.move("acquire", "server01")
    seq = mover.stack.control.last_seq()
    record = mover.move("acquire", "server01")
    assert record["status"] == "succeeded"
    assert [s["name"] for s in record["steps"]] == ["find_holder"]
    assert mover.writes_since(seq) == []


def test_release_removes_only_from_the_caller(mover: Mover) -> None:
    mover.move("acquire", "server01")
    seq = mover.stack.control.last_seq()
    record = mover.move("release", "server02")
    assert record["status"] == "succeeded"
    assert mover.writes_since(seq) == [], "a non-holder's release must not write"
    mover.assert_only_on("server01")

    record = mover.move("release", "server01")
    assert record["status"] == "succeeded"
    assert mover.holders() == []
    assert [s["name"] for s in record["steps"]] == ["find_holder", "remove_ip_config", "verify"]


def test_moves_keep_every_other_nic_setting(mover: Mover) -> None:
    before = {vm: _settings(mover.stack.control.nic(n)) for vm, n in NIC.items()}
    for vm in ("server01", "server02", "server01"):
        assert mover.move("acquire", vm)["status"] == "succeeded"
    mover.move("release", "server01")
    after = {vm: _settings(mover.stack.control.nic(n)) for vm, n in NIC.items()}
    assert after == before


def test_a_retried_post_returns_the_same_request(mover: Mover) -> None:
    request_id = str(uuid.uuid4())
    first = mover.post("acquire", "server01", requestId=request_id)
    again = mover.post("acquire", "server01", requestId=request_id)
    assert first.status_code == 202
    assert again.status_code in (200, 202)
    assert again.json()["requestId"] == request_id
    mover.wait(request_id, "server01")
    done = mover.post("acquire", "server01", requestId=request_id)
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    history = mover.get(f"ips/{IP}/history", "server01").json()["records"]
    assert [r["requestId"] for r in history].count(request_id) == 1


def test_a_request_id_reused_for_another_request_is_a_conflict(mover: Mover) -> None:
    request_id = str(uuid.uuid4())
    mover.wait(
        mover.post("acquire", "server01", requestId=request_id).json()["requestId"], "server01"
    )
    r = mover.post("release", "server01", requestId=request_id)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "request_id_conflict"


def test_concurrent_acquires_are_serialized_first_come_first_served(mover: Mover) -> None:
    """20 acquires from two nodes at once: one at a time, all answered, one holder.

    Each node may have 3 requests pending (limits.maxPendingPerCaller): the rest
    are refused (429 at once, or refused by the lock without any write).
    """
    vms = ["server01", "server02"] * 10
    with ThreadPoolExecutor(20) as pool:
        posted = list(pool.map(lambda vm: (vm, mover.post("acquire", vm)), vms))
    assert {r.status_code for _, r in posted} <= {202, 429}
    accepted = [(vm, r) for vm, r in posted if r.status_code == 202]
    answers = [mover.wait(r.json()["requestId"], vm, timeout=120) for vm, r in accepted]
    refused = [a for a in answers if a["status"] == "failed"]
    assert all(a["error"]["code"] == "too_many_pending" for a in refused), refused
    assert all(a["steps"] == [] for a in refused)
    records = [a for a in answers if a["status"] == "succeeded"]
    assert len(records) + len(refused) == len(answers)
    for vm in ("server01", "server02"):
        assert len([r for r in records if r["caller"]["member"] == vm]) >= 3

    spans = sorted(records, key=lambda r: r["lockedAt"])
    for earlier, later in itertools.pairwise(spans):
        assert earlier["finishedAt"] <= later["lockedAt"], "two moves of one IP overlapped"
    last = spans[-1]
    mover.assert_only_on(last["caller"]["member"])
    history = mover.get(f"ips/{IP}/history?limit=100", "server01").json()["records"]
    assert {r["requestId"] for r in records} <= {h["requestId"] for h in history}


def test_a_request_whose_deadline_passes_in_the_queue_never_runs(mover: Mover) -> None:
    # Hold the lock with a slow move: NIC updates take 3 s.
    mover.stack.control.update_settings(nic_update_seconds=3.0)
    slow = mover.post("acquire", "server01")
    mover.stack.control.wait_for(
        lambda: (
            mover.get(f"requests/{slow.json()['requestId']}", "server01").json()["status"]
            == "running"
        )
    )
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
    late = mover.post("acquire", "server02", deadline=deadline)
    record = mover.wait(late.json()["requestId"], "server02")
    assert record["status"] == "expired"
    assert record["steps"] == [] and record["lockedAt"] is None
    assert mover.wait(slow.json()["requestId"], "server01")["status"] == "succeeded"
    mover.assert_only_on("server01")


def test_ip_state_shows_holder_and_lock(mover: Mover) -> None:
    mover.move("acquire", "server02")
    r = mover.get(f"ips/{IP}", "server01")
    assert r.status_code == 200
    body = r.json()
    assert body["cluster"] == "cluster1" and body["ipConfigName"] == "ipconfig2"
    assert [h["member"] for h in body["holders"]] == ["server02"]
    assert body["lock"]["holder"] is None and body["lock"]["queue"] == []


def test_health_needs_no_token(mover: Mover) -> None:
    r = mover.http.get(f"{mover.stack.api}/health", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok", "audience": AUDIENCE}


def test_a_retried_post_after_its_deadline_still_gets_its_request(mover: Mover) -> None:
    request_id = str(uuid.uuid4())
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    posted = mover.post("acquire", "server01", requestId=request_id, deadline=deadline)
    assert posted.status_code == 202
    mover.wait(request_id, "server01")
    mover.stack.control.wait_for(lambda: dt.datetime.now(dt.UTC).isoformat() > deadline)
    again = mover.post("acquire", "server01", requestId=request_id, deadline=deadline)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "succeeded"


def test_a_finished_request_is_already_in_the_ips_history(mover: Mover) -> None:
    # Poll as fast as a client might; the moment a request reads finished, the
    # IP's history must have its record (one truth for a finished request).
    for vm in ("server01", "server02", "server01", "server02"):
        request_id = mover.post("acquire", vm).json()["requestId"]
        deadline = time.monotonic() + 60
        while True:
            record = mover.get(f"requests/{request_id}", vm).json()
            if record["status"] in FINISHED:
                break
            assert time.monotonic() < deadline, record
            time.sleep(0.005)
        history = mover.get(f"ips/{IP}/history", vm).json()["records"]
        assert record["status"] == "succeeded", record
        assert [r for r in history if r["requestId"] == request_id] == [record]


def test_an_update_answered_in_the_put_is_not_polled(mover: Mover, nic_update_mode: str) -> None:
    """The answer that says the update is done (the PUT's, else the poll's read of the
    NIC) is also the verification: no ARM call follows it."""
    control = mover.stack.control
    seq = control.last_seq()
    record = mover.move("acquire", "server01")
    assert record["status"] == "succeeded", record
    (put,) = control.requests(since=seq, method="PUT")
    after = control.requests(since=put.seq)
    if nic_update_mode == "sync":
        assert after == []
    else:  # the NIC itself is polled until Succeeded; the operation only read on failure
        assert after and all(r.method == "GET" and r.status == 200 for r in after)
        assert all(r.path.lower() == put.path.lower() for r in after), after
    assert [s["name"] for s in record["steps"]][-1] == "verify"
    (add,) = [s for s in record["steps"] if s["name"] == "add_ip_config"]
    (operation,) = control.operations()
    assert add["armOperationId"] == operation["id"]  # the PUT's x-ms-request-id
