"""ARM misbehaving: every fault is retried to success or ends with a precise reason."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import requests

from ..azure.helpers import nic_path, with_secondary
from .conftest import IP, NIC, Mover

NIC_PUT = "networkInterfaces/server02800"


@pytest.fixture(params=["async", "sync"])
def nic_update_mode(request: pytest.FixtureRequest) -> str:
    """Every fault test runs with NIC updates answered Updating, then answered in the PUT."""
    return request.param


def _step(record: dict, name: str) -> dict:
    return next(s for s in record["steps"] if s["name"] == name)


def _read_before_writing(control, since: int) -> bool:
    """Whether the move has read server02's NIC: its write is made on that read (the
    worker process keeps the NIC as read, at its etag), so a change from now on falls
    between the move's read and its write (the PUT is delayed)."""
    return len(control.requests(since=since, method="GET", path_contains=NIC_PUT)) >= 1


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
    mover.assert_only_on("server02")


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
    """A connection closed without an answer is sent again at once by the HTTP client
    (aiohttp, for idempotent methods, as RFC 9112 allows); closed again, the step fails
    with NoResponse and the orchestration retries it."""
    control = mover.stack.control
    # server02's NIC is read only to find the holder (and to verify), never written here.
    other = "networkInterfaces/server02800$"
    seq = control.last_seq()
    control.fail_next(1, method="GET", path=other, status=503, code="ServiceUnavailable")
    control.drop_next(2, method="GET", path=other)
    control.drop_next(2, method="PUT", path="networkInterfaces/server01535")
    record = mover.move("acquire", "server01")
    assert record["status"] == "succeeded", record
    assert _step(record, "find_holder")["retried"] == ["ServiceUnavailable", "NoResponse"]
    assert _step(record, "add_ip_config")["retried"] == ["NoResponse"]
    mover.assert_only_on("server01")
    puts = control.requests(since=seq, method="PUT")
    assert [r.fault for r in puts] == ["drop", "drop", None]


@pytest.mark.parametrize(
    ("vm", "step"), [("server01", "remove_ip_config"), ("server02", "add_ip_config")]
)
def test_an_update_that_leaves_either_nic_failed_is_retried(
    held_by_server01: Mover, vm: str, step: str
) -> None:
    mover = held_by_server01
    control = mover.stack.control
    control.fail_next_lros(1, code="InternalServerError", path=f"networkInterfaces/{NIC[vm]}$")
    record = mover.move("acquire", "server02")
    assert record["status"] == "succeeded", record
    assert _step(record, step)["retried"] == ["InternalServerError"]
    mover.assert_only_on("server02")
    failed = [op for op in control.operations() if op["status"] == "Failed"]
    assert [op["nic"] for op in failed] == [NIC[vm]]  # the NIC was left Failed, then fixed
    for nic in NIC.values():
        assert control.nic(nic)["properties"]["provisioningState"] == "Succeeded"
    # What the VMs themselves see: the IP on server02 only.
    assert IP in mover.imds_ips("server02")
    assert IP not in mover.imds_ips("server01")


def test_another_operation_in_progress_ends_the_update_and_is_retried(mover: Mover) -> None:
    """Someone else's update of server02's NIC is still running when the mover writes it."""
    control, ready = mover.stack.control, mover.stack.ready
    control.update_settings(nic_update_seconds=3.0)
    nic = control.nic(NIC["server02"])
    nic["tags"] = {**nic.get("tags", {}), "changedBy": "another-writer"}
    other = threading.Thread(
        target=requests.put,
        args=(f"{ready.arm}{nic_path(ready, NIC['server02'])}",),
        kwargs={
            "params": {"api-version": "2026-03-01"},
            "json": nic,
            "headers": {"Authorization": f"Bearer {control.token('app')}"},
            "verify": ready.ca_file,
            "timeout": 30,
        },
    )
    other.start()
    control.wait_for(
        lambda: control.nic(NIC["server02"])["properties"]["provisioningState"] == "Updating"
    )
    record = mover.move("acquire", "server02")
    other.join()
    assert record["status"] == "succeeded", record
    assert "AnotherOperationInProgress" in _step(record, "add_ip_config")["retried"]
    mover.assert_only_on("server02")
    assert control.nic(NIC["server02"])["tags"]["changedBy"] == "another-writer"


def test_an_address_taken_between_listing_and_writing_is_re_planned(mover: Mover) -> None:
    """Another writer puts the IP on server01's NIC while the mover's add to server02 is
    on its way: ARM names server01's ip-configuration, and the mover moves it over."""
    control = mover.stack.control
    control.delay_next(1, 1.5, method="PUT", path=NIC_PUT)
    seq = control.last_seq()
    posted = mover.post("acquire", "server02")
    control.wait_for(lambda: _read_before_writing(control, seq), timeout=20)
    control.set_nic(NIC["server01"], with_secondary(control.nic(NIC["server01"])))

    record = mover.wait(posted.json()["requestId"], "server02")
    assert record["status"] == "succeeded", record
    add_steps = [s for s in record["steps"] if s["name"] == "add_ip_config"]
    assert add_steps[0]["error"]["code"] == "PrivateIPAddressIsAllocated"
    assert f"{NIC['server01']}/ipConfigurations/ipconfig2" in add_steps[0]["error"]["message"]
    assert [s["name"] for s in record["steps"]][-3:] == [
        "remove_ip_config",
        "add_ip_config",
        "verify",
    ]
    mover.assert_only_on("server02")


def test_an_address_held_outside_the_cluster_fails_with_arms_reason(mover: Mover) -> None:
    control = mover.stack.control
    frontend = (
        f"/subscriptions/{mover.stack.ready.subscription_id}/resourceGroups/OtherGroup/providers"
        "/Microsoft.Network/loadBalancers/lb1/frontendIPConfigurations/fe1"
    )
    control.hold_ip(IP, frontend)
    seq = control.last_seq()
    record = mover.move("acquire", "server01")
    assert record["status"] == "failed", record
    assert record["error"]["code"] == "PrivateIPAddressIsAllocated"
    assert record["error"]["message"].endswith(f"already allocated to resource {frontend}.")
    assert len(mover.writes_since(seq)) == 2  # one more try after a fresh listing, no more
    assert mover.holders() == []
    control.let_go_ip(IP)
    assert mover.move("acquire", "server01")["status"] == "succeeded"


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
    control.wait_for(lambda: _read_before_writing(control, seq), timeout=20)
    nic = control.nic("server02800")
    nic["tags"] = {**nic.get("tags", {}), "changedBy": "another-writer"}
    control.set_nic("server02800", nic)

    record = mover.wait(posted.json()["requestId"], "server02")
    assert record["status"] == "succeeded", record
    assert _step(record, "add_ip_config")["retried"] == ["PreconditionFailed"]
    final = control.nic("server02800")
    assert final["tags"]["changedBy"] == "another-writer"
    mover.assert_only_on("server02")


def test_the_deadline_bounds_the_retries(mover: Mover) -> None:
    mover.stack.control.fail_next(
        100, method="GET", path="networkInterfaces/[^/]+$", status=503, code="ServiceUnavailable"
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


@pytest.mark.parametrize("nic_update_mode", ["async"])  # only an update answered Updating polls
def test_a_failed_update_whose_operation_is_unreadable_is_retried_on_the_nics_state(
    held_by_server01: Mover,
) -> None:
    """Where the role does not cover the subscription-level operation resource, the
    NIC's own provisioningState says the update failed (without ARM's reason)."""
    mover = held_by_server01
    control = mover.stack.control
    control.fail_next_lros(
        1, code="InternalServerError", path=f"networkInterfaces/{NIC['server02']}$"
    )
    control.fail_next(5, method="GET", path="/operations/", status=403, code="AuthorizationFailed")
    seq = control.last_seq()
    record = mover.move("acquire", "server02")
    assert record["status"] == "succeeded", record
    assert _step(record, "add_ip_config")["retried"] == ["OperationFailed"]
    mover.assert_only_on("server02")
    refused = [r for r in control.requests(since=seq) if r.status == 403]
    assert refused and all("/operations/" in r.path for r in refused)


@pytest.mark.parametrize("nic_update_mode", ["async"])  # only an update answered Updating polls
@pytest.mark.parametrize(
    ("status", "code"), [(503, "ServiceUnavailable"), (429, "SubscriptionRequestsThrottled")]
)
def test_a_poll_that_fails_while_an_update_is_followed_is_made_again(
    held_by_server01: Mover, status: int, code: str
) -> None:
    """ARM accepts the add, then the poll that follows it fails: that says nothing of the
    update, so the NIC is polled again (after ARM's Retry-After). The update is not
    retried: written once, no stale etag, no read of the holder again."""
    mover = held_by_server01
    control = mover.stack.control
    nic_get = f"networkInterfaces/{NIC['server02']}$"
    control.delay_next(1, 0.0, method="GET", path=nic_get)  # the read that finds the holder
    control.fail_next(1, method="GET", path=nic_get, status=status, code=code, retry_after=0.5)
    seq = control.last_seq()

    record = mover.move("acquire", "server02")

    assert record["status"] == "succeeded", record
    assert _step(record, "add_ip_config")["attempt"] == 1
    mover.assert_only_on("server02")
    puts = control.requests(since=seq, method="PUT", path_contains=NIC_PUT)
    assert [r.status for r in puts] == [200]  # one write, accepted
    polls = control.requests(since=seq, method="GET", path_contains=NIC_PUT)
    assert [r.status for r in polls][:2] == [200, status]
    assert polls[2].time - polls[1].time >= 0.5  # ARM's Retry-After
    assert control.nic(NIC["server02"])["properties"]["provisioningState"] == "Succeeded"
