"""The per-request telemetry line: its fields, computed from the audit record."""

from __future__ import annotations

import json

from mover.errors import ErrorInfo
from mover.telemetry import MOVE_EVENT, ArmTally, is_throttling, move_telemetry

NICS = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces"


def record(**changes) -> dict:
    base = {
        "requestId": "6f1c2d3e-0c55-4b8e-9b0e-0cf1f0a3e9d1",
        "ip": "10.5.0.110",
        "action": "acquire",
        "cluster": "ha1",
        "status": "succeeded",
        "caller": {"member": "server02", "vm": "/subscriptions/s/...", "byOperator": False},
        "context": {"event": "FAILOVER", "group": "failover"},
        "createdAt": "2026-11-26T12:00:00.000Z",
        "deadline": "2026-11-26T12:05:00.000Z",
        "lockedAt": "2026-11-26T12:00:01.500Z",
        "finishedAt": "2026-11-26T12:00:05.250Z",
        "fromNics": [f"{NICS}/server01535"],
        "toNic": f"{NICS}/server02800",
        "unassigned": False,
        "steps": [{"name": "find_holder"}, {"name": "remove_ip_config"}],
        "error": None,
    }
    return {**base, **changes}


def test_a_finished_move_gives_every_field_an_operator_queries():
    tally = ArmTally(reads=2, writes=2, waits=1, retries=1, throttled=1)

    fields = move_telemetry(record(), tally, force=False).to_dict()

    assert fields == {
        "requestId": "6f1c2d3e-0c55-4b8e-9b0e-0cf1f0a3e9d1",
        "ip": "10.5.0.110",
        "cluster": "ha1",
        "action": "acquire",
        "outcome": "succeeded",
        "errorCode": None,
        "member": "server02",
        "byOperator": False,
        "force": False,
        "event": "FAILOVER",
        "fromNics": ["server01535"],
        "toNic": "server02800",
        "unassigned": False,
        "durationSeconds": 5.25,
        "waitedSeconds": 1.5,
        "movedSeconds": 3.75,
        "armReads": 2,
        "armWrites": 2,
        "armWaits": 1,
        "armRetries": 1,
        "armThrottled": 1,
        "steps": 2,
        "createdAt": "2026-11-26T12:00:00.000Z",
        "finishedAt": "2026-11-26T12:00:05.250Z",
    }


def test_an_expired_request_waited_its_whole_life_and_moved_nothing():
    expired = record(
        status="expired",
        lockedAt=None,
        fromNics=[],
        toNic=None,
        steps=[],
        error={"code": "expired", "message": "..."},
    )

    fields = move_telemetry(expired, ArmTally(), force=False).to_dict()

    assert fields["outcome"] == "expired" and fields["errorCode"] == "expired"
    assert fields["waitedSeconds"] == fields["durationSeconds"] == 5.25
    assert fields["movedSeconds"] == 0.0 and fields["toNic"] is None


def test_the_line_is_the_event_name_and_one_line_of_json():
    # A caller-sent event with a newline and a line separator cannot end the log line.
    hostile = record(context={"event": "FAIL\nOVER\u2028x"})

    line = move_telemetry(hostile, ArmTally(), force=True).line()

    assert line.startswith(MOVE_EVENT + " {")
    assert "\n" not in line and "\u2028" not in line
    parsed = json.loads(line[len(MOVE_EVENT) + 1 :])
    assert parsed["event"] == "FAIL\nOVER\u2028x" and parsed["force"] is True


def test_the_log_extra_is_flat_and_prefixed():
    extra = move_telemetry(record(), ArmTally(), force=False).log_extra()

    assert extra["ipmover_ip"] == "10.5.0.110"
    assert extra["ipmover_fromNics"] == "server01535"
    assert all(not isinstance(v, list | dict) for v in extra.values())


def test_throttling_is_a_429_or_arms_throttling_code():
    assert is_throttling(ErrorInfo("SubscriptionRequestsThrottled", "m", True, 10, 429))
    assert is_throttling(ErrorInfo("HTTP429", "m", True, None, 429))
    assert is_throttling(ErrorInfo("TooManyRequests", "m", True))
    assert not is_throttling(ErrorInfo("AnotherOperationInProgress", "m", True, None, 409))


def test_the_tally_counts_failed_attempts_and_throttling_apart():
    tally = ArmTally()
    tally.count_failure(ErrorInfo("SubscriptionRequestsThrottled", "m", True, 1, 429))
    tally.count_failure(ErrorInfo("InternalServerError", "m", True, None, 500))

    assert (tally.retries, tally.throttled) == (2, 1)
