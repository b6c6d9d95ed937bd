"""The host's decisions as plain functions: routes, action lists, episode batches."""

from __future__ import annotations

import json

import pytest

from emulator.host.actions import ActionType, flatten_actions, parse_answer
from emulator.host.catalog import compile_route
from emulator.host.history import EventType
from emulator.host.management_api import _serialized_input
from emulator.host.orchestration_runner import ReplayState, _retry_delay_ms, _select_batch
from emulator.host.store import Message


@pytest.mark.parametrize(
    ("route", "path", "params"),
    [
        ("v1/ips/{ip}/acquire", "v1/ips/10.5.0.110/acquire", {"ip": "10.5.0.110"}),
        ("v1/ips/{ip}/acquire", "V1/IPS/10.5.0.110/ACQUIRE", {"ip": "10.5.0.110"}),
        ("items/{id:int}", "items/42", {"id": "42"}),
        ("echo/{a}/{b?}", "echo/x", {"a": "x", "b": None}),
        ("files/{*rest}", "files/a/b/c", {"rest": "a/b/c"}),
    ],
)
def test_route_templates_match_like_the_host(route: str, path: str, params: dict) -> None:
    m = compile_route(route).fullmatch(path)
    assert m is not None
    assert m.groupdict() == params


def test_route_parameter_does_not_cross_a_slash() -> None:
    assert compile_route("v1/ips/{ip}").fullmatch("v1/ips/a/b") is None


def test_flatten_keeps_scheduling_order_through_compound_actions() -> None:
    a = {"actionType": ActionType.CALL_ACTIVITY, "functionName": "a"}
    b = {"actionType": ActionType.CALL_ACTIVITY, "functionName": "b"}
    t = {"actionType": ActionType.CREATE_TIMER, "fireAt": "2026-01-01T00:00:00Z"}
    nested = {
        "actionType": ActionType.WHEN_ALL,
        "compoundActions": [b, {"actionType": ActionType.WHEN_ANY, "compoundActions": [t]}],
    }
    assert flatten_actions([[a, nested]]) == [a, b, t]
    # Schema V1: a list per yield.
    assert flatten_actions([[a], [b, t]]) == [a, b, t]


def test_parse_answer_reads_the_out_of_proc_error_payload() -> None:
    state = {"isDone": False, "actions": [[]], "error": "boom", "customStatus": {"x": 1}}
    # The worker's message of the SDK's exception: "Type: message".
    raised = f"Exception: boom\n\n$OutOfProcData$:{json.dumps(state)}"
    answer = parse_answer(None, raised)
    assert answer.error == "boom"
    assert answer.custom_status == {"x": 1}


def test_parse_answer_of_an_exception_without_payload_is_a_failure() -> None:
    assert parse_answer(None, "ValueError: bad input").error == "ValueError: bad input"


def test_parse_answer_of_a_finished_orchestration() -> None:
    answer = parse_answer(json.dumps({"isDone": True, "actions": [[]], "output": [1]}), None)
    assert answer.is_done and answer.output == [1] and answer.error is None


def _message(i: int, kind: EventType, **fields) -> Message:
    return Message(
        id=i, instance_id="x", execution_id=None, body={"EventType": kind, **fields}, visible_at=0.0
    )


def test_retry_events_lead_their_episode() -> None:
    state = ReplayState(
        tasks={
            "0": {"kind": "activity", "retry": {"maxNumberOfAttempts": 3}},
            "1": {"kind": "activity", "retry": None},
        }
    )
    done = _message(1, EventType.TASK_COMPLETED, TaskScheduledId=1)
    failed = _message(2, EventType.TASK_FAILED, TaskScheduledId=0)
    other = _message(3, EventType.EVENT_RAISED, Name="e")
    # The retry failure may not follow another event in one episode...
    assert _select_batch([done, failed, other], state, first_episode=False) == [done]
    # ...but may lead one.
    assert _select_batch([failed, other], state, first_episode=False) == [failed, other]


def test_first_episode_starts_with_execution_started() -> None:
    raised = _message(1, EventType.EVENT_RAISED, Name="e")
    started = _message(2, EventType.EXECUTION_STARTED)
    assert _select_batch([raised, started], ReplayState(), first_episode=True) == [started, raised]
    assert _select_batch([raised], ReplayState(), first_episode=True) == []


def test_retry_delay_follows_backoff_and_cap() -> None:
    assert _retry_delay_ms({"firstRetryIntervalInMilliseconds": 100}, 3) == 100
    backoff = {
        "firstRetryIntervalInMilliseconds": 100,
        "backoffCoefficient": 2,
        "maxRetryIntervalInMilliseconds": 300,
    }
    assert [_retry_delay_ms(backoff, n) for n in (1, 2, 3)] == [100, 200, 300]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", None),
        (json.dumps(json.dumps({"a": 1})).encode(), '{"a": 1}'),  # the Python client's way
        (b'{"a": 1}', '{"a": 1}'),  # a plain JSON caller
        (b'"plain text"', '"plain text"'),
    ],
)
def test_management_api_input_is_the_serialized_value(body: bytes, expected: str | None) -> None:
    assert _serialized_input(body) == expected


def test_management_api_rejects_malformed_json() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        _serialized_input(b"{nope")
