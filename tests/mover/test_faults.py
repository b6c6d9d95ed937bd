"""ARM misbehaving: every fault is retried to success or ends with a precise reason."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from .conftest import IP, NIC, Mover

NIC_PUT = "networkInterfaces/server02800"


def _step(record: dict, name: str) -> dict:
    return next(s for s in record["steps"] if s["name"] == name)


@pytest.fixture
def held_by_server01(mover: Mover) -> Mover:
    """The IP starts on server01, so a move to server02 removes then adds."""
    assert mover.move("acquire", "server01")["status"] == "succeeded"
    return mover


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "SubscriptionRequestsThrottled"),
        (409, "AnotherOperationInProgress"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailable"),
        (412, "PreconditionFailed"),
    ],
)
def test_transient_write_errors_are_retried(
    held_by_server01: Mover, status: int, code: str
) -> None:
    mover = held_by_server01
    mover.stack.control.fail_next(2, method="PUT", path=NIC_PUT, status=status, code=code)
    record = mover.move("acquire", "server02")
    assert record["status"] == "succeeded", record
    add = _step(record, "add_ip_config")
    assert add["attempt"] == 3 and add["retried"] == [code, code]
    assert mover.holders() == [NIC["server02"]]


def test_throttling_waits_for_retry_after(held_by_server01: Mover) -> None:
    mover = held_by_server01
    mover.stack.control.fail_next(
        1,
        method="PUT",
        path=NIC_PUT,
        status=429,
        code="SubscriptionRequestsThrottled",
        retry_after=2,
    )
    started = time.monotonic()
    record = mover.move("acquire", "server02")
    assert record["status"] == "succeeded"
    assert time.monotonic() - started >= 2.0
    assert _step(record, "add_ip_config")["retried"] == ["SubscriptionRequestsThrottled"]


def test_read_errors_and_dropped_connections_are_retried(mover: Mover) -> None:
    mover.stack.control.fail_next(
        1, method="GET", path="networkInterfaces$", status=503, code="ServiceUnavailable"
    )
    mover.stack.control.drop_next(1, method="GET", path="networkInterfaces$")
    mover.stack.control.drop_next(1, method="PUT", path="networkInterfaces/server01535")
    record = mover.move("acquire", "server01")
    assert record["status"] == "succeeded", record
    assert _step(record, "find_holder")["retried"] == ["ServiceUnavailable", "NoResponse"]
    assert _step(record, "add_ip_config")["retried"] == ["NoResponse"]
    assert mover.holders() == [NIC["server01"]]


def test_an_update_that_ends_failed_is_retried(held_by_server01: Mover) -> None:
    mover = held_by_server01
    mover.stack.control.fail_next_lros(1, code="InternalServerError", path=NIC_PUT)
    record = mover.move("acquire", "server02")
    assert record["status"] == "succeeded", record
    assert _step(record, "add_ip_config")["retried"] == ["InternalServerError"]
    assert mover.holders() == [NIC["server02"]]


def test_a_permanent_error_fails_with_its_reason_and_frees_the_lock(
    held_by_server01: Mover,
) -> None:
    mover = held_by_server01
    mover.stack.control.fail_next(
        1,
        method="PUT",
        path="networkInterfaces/server01535",
        status=403,
        code="AuthorizationFailed",
        message="The client does not have authorization",
    )
    record = mover.move("acquire", "server02")
    assert record["status"] == "failed"
    assert record["error"]["code"] == "AuthorizationFailed"
    assert "does not have authorization" in record["error"]["message"]
    assert mover.holders() == [NIC["server01"]], "nothing may change after a refused remove"
    # The lock was released at once (not freed later by its lease running out).
    lock = mover.get(f"ips/{IP}", "server02").json()["lock"]
    assert (lock["holder"], lock["queue"]) == (None, [])
    assert mover.move("acquire", "server02")["status"] == "succeeded"


def test_an_etag_race_with_another_writer_keeps_both_changes(held_by_server01: Mover) -> None:
    """Someone else updates server02's NIC between our read and our write."""
    mover = held_by_server01
    control = mover.stack.control
    control.delay_next(1, 1.5, method="PUT", path=NIC_PUT)
    seq = control.last_seq()
    posted = mover.post("acquire", "server02")
    control.wait_for(
        lambda: [r for r in control.requests(since=seq, method="GET", path_contains=NIC_PUT)],
        timeout=20,
    )
    nic = control.nic("server02800")
    nic["tags"] = {**nic.get("tags", {}), "changedBy": "another-writer"}
    control.set_nic("server02800", nic)

    record = mover.wait(posted.json()["requestId"], "server02")
    assert record["status"] == "succeeded", record
    assert _step(record, "add_ip_config")["retried"] == ["PreconditionFailed"]
    final = control.nic("server02800")
    assert final["tags"]["changedBy"] == "another-writer"
    assert mover.holders() == [NIC["server02"]]


def test_the_deadline_bounds_the_retries(mover: Mover) -> None:
    mover.stack.control.fail_next(
        100, method="GET", path="networkInterfaces$", status=503, code="ServiceUnavailable"
    )
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).isoformat()
    record = mover.move("acquire", "server01", deadline=deadline)
    assert record["status"] == "failed"
    assert record["error"]["code"] == "deadline_exceeded"
    assert "ServiceUnavailable" in record["error"]["message"]
    assert mover.holders() == []


def test_an_ip_left_on_no_nic_is_reported_as_unassigned(held_by_server01: Mover) -> None:
    """The remove worked, every add fails until the deadline: the audit says so plainly."""
    mover = held_by_server01
    mover.stack.control.fail_next(
        100, method="PUT", path=NIC_PUT, status=503, code="ServiceUnavailable"
    )
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)).isoformat()
    record = mover.move("acquire", "server02", deadline=deadline)
    assert record["status"] == "failed"
    assert record["unassigned"] is True
    assert f"{IP} is unassigned (on no NIC)" in record["error"]["message"]
    assert _step(record, "remove_ip_config")["status"] == "succeeded"
    assert mover.holders() == []
    mover.stack.control.clear_faults()
    assert mover.move("acquire", "server02")["status"] == "succeeded"


def test_an_unreadable_operation_status_falls_back_to_the_nic_state(mover: Mover) -> None:
    """Where the role does not cover the subscription-level operation resource."""
    control = mover.stack.control
    control.fail_next(5, method="GET", path="/operations/", status=403, code="AuthorizationFailed")
    seq = control.last_seq()
    record = mover.move("acquire", "server01")
    assert record["status"] == "succeeded", record
    assert mover.holders() == [NIC["server01"]]
    refused = [r for r in control.requests(since=seq) if r.status == 403]
    assert refused and all("/operations/" in r.path for r in refused)
