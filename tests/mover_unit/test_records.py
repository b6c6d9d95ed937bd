"""Records: MoveRequest and RequestRecord as data, times, statuses."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from mover.records import (
    Action,
    MoveRequest,
    RequestRecord,
    RequestStatus,
    Step,
    iso,
    parse_iso,
)

from .builders import IP1, IP1_CONFIG, MEMBERS, SUB1


def move_request(**changes) -> MoveRequest:
    request = MoveRequest(
        request_id="req-1",
        action=Action.ACQUIRE,
        ip=IP1,
        ip_config_name=IP1_CONFIG,
        cluster="cluster1",
        subscription_id=SUB1,
        resource_group="TestGroup1",
        member="server01",
        vm_id=MEMBERS["server01"].vm_id,
        caller_principal=MEMBERS["server01"].principal_id,
        by_operator=False,
        created_at="2025-06-01T12:00:00.000Z",
        deadline="2025-06-01T12:05:00.000Z",
        context={"event": "FAILOVER", "group": "failover1"},
    )
    return dataclasses.replace(request, **changes)


# -- MoveRequest --------------------------------------------------------------


def test_move_request_dict_is_json_ready_with_the_action_as_text():
    data = move_request(action=Action.RELEASE).to_dict()

    assert data["action"] == "release"
    assert type(data["action"]) is str
    assert json.loads(json.dumps(data)) == data
    assert data["context"] == {"event": "FAILOVER", "group": "failover1"}


def test_move_request_round_trips_through_its_dict():
    original = move_request()

    restored = MoveRequest.from_dict(json.loads(json.dumps(original.to_dict())))

    assert restored == original
    assert restored.action is Action.ACQUIRE


def test_move_request_dict_does_not_share_the_context():
    original = move_request()

    original.to_dict()["context"]["event"] = "changed"

    assert original.context["event"] == "FAILOVER"


# -- times --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01T12:00:00Z", dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)),
        ("2025-06-01T12:00:00z", dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)),
        ("2025-06-01T12:00:00+00:00", dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)),
        ("2025-06-01T09:00:00-03:00", dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)),
        ("2025-06-01T12:00:00.123456Z", dt.datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)),
    ],
)
def test_parse_iso_returns_utc(text, expected):
    value = parse_iso(text)

    assert value == expected
    assert value.tzinfo is dt.UTC


@pytest.mark.parametrize("text", ["2025-06-01T12:00:00", "2025-06-01 12:00:00", "2025-06-01"])
def test_parse_iso_refuses_a_time_without_zone(text):
    with pytest.raises(ValueError, match="has no time zone"):
        parse_iso(text)


@pytest.mark.parametrize("text", ["", "noon", "2025-13-01T00:00:00Z", "2025-06-01T25:00:00Z"])
def test_parse_iso_refuses_garbage(text):
    with pytest.raises(ValueError):
        parse_iso(text)


def test_iso_writes_utc_with_milliseconds_and_z():
    moment = dt.datetime(2025, 6, 1, 21, 0, 0, 123999, tzinfo=dt.timezone(dt.timedelta(hours=9)))

    assert iso(moment) == "2025-06-01T12:00:00.123Z"


def test_iso_and_parse_iso_round_trip_at_millisecond_precision():
    moment = dt.datetime(2025, 6, 1, 12, 0, 0, 456000, tzinfo=dt.UTC)

    assert parse_iso(iso(moment)) == moment


# -- statuses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "finished"),
    [
        (RequestStatus.QUEUED, False),
        (RequestStatus.RUNNING, False),
        (RequestStatus.SUCCEEDED, True),
        (RequestStatus.FAILED, True),
        (RequestStatus.EXPIRED, True),
    ],
)
def test_only_succeeded_failed_and_expired_are_finished(status, finished):
    assert status.finished is finished


def test_status_and_action_values_are_the_api_words():
    assert [str(s) for s in RequestStatus] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "expired",
    ]
    assert [str(a) for a in Action] == ["acquire", "release"]


# -- RequestRecord ------------------------------------------------------------


def finished_record() -> RequestRecord:
    return RequestRecord(
        request=move_request(by_operator=True),
        status=RequestStatus.SUCCEEDED,
        locked_at="2025-06-01T12:00:01.000Z",
        finished_at="2025-06-01T12:00:25.000Z",
        from_nics=["/nic/server02-nic"],
        to_nic="/nic/server01-nic",
        steps=[
            Step(
                name="remove_ip_config",
                started_at="2025-06-01T12:00:02.000Z",
                status="succeeded",
                finished_at="2025-06-01T12:00:12.000Z",
                nic="server02-nic",
                arm_operation_id="op-1",
                attempt=2,
                error={"code": "PreconditionFailed", "transient": True},
            )
        ],
    )


def test_new_record_is_queued_and_empty():
    record = RequestRecord(request=move_request())

    assert record.status is RequestStatus.QUEUED
    assert record.steps == []
    assert record.from_nics == []
    assert record.error is None


def test_record_api_form_shows_request_caller_and_outcome():
    api = finished_record().to_api()

    assert {k: v for k, v in api.items() if k != "steps"} == {
        "requestId": "req-1",
        "ip": IP1,
        "action": "acquire",
        "cluster": "cluster1",
        "status": "succeeded",
        "caller": {"member": "server01", "vm": MEMBERS["server01"].vm_id, "byOperator": True},
        "context": {"event": "FAILOVER", "group": "failover1"},
        "createdAt": "2025-06-01T12:00:00.000Z",
        "deadline": "2025-06-01T12:05:00.000Z",
        "lockedAt": "2025-06-01T12:00:01.000Z",
        "finishedAt": "2025-06-01T12:00:25.000Z",
        "queuePosition": None,
        "fromNics": ["/nic/server02-nic"],
        "toNic": "/nic/server01-nic",
        "unassigned": False,
        "error": None,
        "splitBrain": None,
    }
    assert json.loads(json.dumps(api)) == api


def test_record_api_form_shows_each_step_with_timings_and_arm_operation():
    (step,) = finished_record().to_api()["steps"]

    expected = {
        "name": "remove_ip_config",
        "status": "succeeded",
        "startedAt": "2025-06-01T12:00:02.000Z",
        "finishedAt": "2025-06-01T12:00:12.000Z",
        "nic": "server02-nic",
        "armOperationId": "op-1",
        "attempt": 2,
        "error": {"code": "PreconditionFailed", "transient": True},
    }
    assert step.items() >= expected.items()


def test_record_api_form_does_not_expose_the_callers_principal():
    assert MEMBERS["server01"].principal_id not in json.dumps(finished_record().to_api())


def test_history_keeps_only_the_newest_refused_records():
    from mover.records import MAX_REFUSED_RECORDS, REFUSED_CODE, append_record

    def record(i: int, code: str | None) -> dict:
        return {"requestId": f"r{i}", "error": {"code": code, "message": ""} if code else None}

    history: list[dict] = [record(0, None)]
    for i in range(1, 40):
        history = append_record(history, record(i, REFUSED_CODE), limit=20)
    history = append_record(history, record(40, None), limit=20)

    assert history[0]["requestId"] == "r0"  # the real record survives the flood
    refused = [r for r in history if r["error"]]
    assert len(refused) == MAX_REFUSED_RECORDS
    assert refused[-1]["requestId"] == "r39"
    assert history[-1]["requestId"] == "r40"


def test_a_replayed_append_replaces_the_record():
    from mover.records import append_record

    history = append_record([{"requestId": "a", "v": 1}], {"requestId": "a", "v": 2}, limit=5)
    assert history == [{"requestId": "a", "v": 2}]
