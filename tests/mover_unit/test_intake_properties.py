"""Whatever arrives in a body or a route, the parsers answer a value or a documented 4xx.

Property-based (hypothesis): malformed input of any shape, depth, size or date
range must never escape as another exception (which the API would turn into a 500).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mover.intake import MoveBody, parse_ip, parse_move_body, parse_request_id
from mover.records import parse_iso

from .test_intake import api_error

# The codes docs/api.md documents for 4xx answers.
_DOCS = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
DOCUMENTED_CODES = frozenset(re.findall(r"`([a-z_]+)`", _DOCS))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
body_fields = st.fixed_dictionaries(
    {},
    optional={
        "requestId": json_values,
        "deadline": json_values | st.datetimes().map(lambda d: d.isoformat()),
        "context": json_values | st.dictionaries(st.sampled_from(["event", "group"]), json_values),
        "target": json_values,
    },
)


def answers_cleanly(call, *args) -> None:
    """The call returns, or raises an ApiError with a documented 4xx code."""
    try:
        call(*args)
    except Exception as exc:
        assert type(exc).__name__ == "ApiError", f"{type(exc).__name__}: {exc}"
        assert 400 <= exc.status < 500, exc.status
        assert exc.code in DOCUMENTED_CODES, exc.code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_as_a_body_are_a_value_or_a_4xx(raw: bytes) -> None:
    answers_cleanly(parse_move_body, raw)


@settings(max_examples=300, deadline=None)
@given(body_fields)
def test_any_json_object_as_a_body_is_a_value_or_a_4xx(fields: dict) -> None:
    answers_cleanly(parse_move_body, json.dumps(fields).encode())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_route_text_is_an_ip_or_a_400(text: str) -> None:
    answers_cleanly(parse_ip, text)
    answers_cleanly(parse_request_id, text)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=5_000), st.sampled_from([b"[", b'{"a":', b'{"context":']))
def test_any_nesting_depth_is_a_value_or_a_4xx(depth: int, opener: bytes) -> None:
    answers_cleanly(parse_move_body, opener * depth)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(), st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
@example(dt.datetime(1, 1, 1), 60)
@example(dt.datetime(9999, 12, 31, 23, 59, 59), -60)
def test_any_deadline_in_any_zone_is_a_value_or_a_400(moment, offset_minutes) -> None:
    sign = "+" if offset_minutes >= 0 else "-"
    text = (
        f"{moment.isoformat()}{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    )
    answers_cleanly(parse_move_body, json.dumps({"deadline": text}).encode())


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[" * 10_000, "invalid_json"),
        (b'{"a":' * 2_000 + b"1" + b"}" * 2_000, "invalid_json"),
        (b'{"requestId": ' + b"9" * 5_000 + b"}", "invalid_json"),
        (b'{"deadline": "9999-12-31T23:59:59-01:00"}', "invalid_deadline"),
        (b'{"deadline": "0001-01-01T00:00:00+01:00"}', "invalid_deadline"),
        (b'{"deadline": 1e999}', "invalid_deadline"),
    ],
)
def test_hostile_bodies_seen_in_probes_are_400(raw: bytes, code: str) -> None:
    error = api_error(parse_move_body, raw)
    assert (error.status, error.code) == (400, code)


def test_a_far_future_deadline_that_exists_in_utc_is_accepted() -> None:
    body = parse_move_body(b'{"deadline": "9999-12-31T23:59:59+01:00"}')
    assert isinstance(body, MoveBody)
    assert body.deadline == parse_iso("9999-12-31T22:59:59Z")
