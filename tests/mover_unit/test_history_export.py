"""Paging an IP's history for export: oldest first, resumable, never silently skipping."""

from __future__ import annotations

import pytest

from mover.access import ApiError
from mover.history import DEFAULT_EXPORT_PAGE, export_page, parse_export_query

RECORDS = [{"requestId": f"r{i}", "status": "succeeded"} for i in range(5)]


def ids(records: list[dict]) -> list[str]:
    return [r["requestId"] for r in records]


def test_pages_walk_the_history_oldest_first_and_end_without_a_cursor():
    first = export_page(RECORDS, None, 2)
    second = export_page(RECORDS, first.next_after, 2)
    last = export_page(RECORDS, second.next_after, 2)

    assert (ids(first.records), first.next_after) == (["r0", "r1"], "r1")
    assert (ids(second.records), second.next_after) == (["r2", "r3"], "r3")
    assert (ids(last.records), last.next_after) == (["r4"], None)


def test_a_page_that_takes_the_rest_exactly_has_no_next_cursor():
    assert export_page(RECORDS, "r2", 2).next_after is None
    assert export_page(RECORDS, "r4", 2).records == []
    assert export_page([], None, 10).records == []


def test_a_cursor_that_the_cap_dropped_is_refused_rather_than_skipping_records():
    # r0 and r1 were dropped (the history keeps the newest records): whatever came
    # between the exporter's last record and r2 may be gone.
    with pytest.raises(ApiError) as caught:
        export_page(RECORDS[2:], "r1", 2)

    assert (caught.value.status, caught.value.code) == (410, "cursor_gone")
    assert "export again from the start" in caught.value.message


def test_query_defaults_and_bounds():
    assert parse_export_query({}, 500) == (None, DEFAULT_EXPORT_PAGE)
    assert parse_export_query({"after": "r1", "limit": "500"}, 500) == ("r1", 500)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_body"),
        ({"limit": "501"}, "invalid_body"),
        ({"limit": "ten"}, "invalid_body"),
        ({"after": "bad id!"}, "invalid_request_id"),
        ({"after": ""}, "invalid_request_id"),
    ],
)
def test_bad_query_is_a_400(params, code):
    with pytest.raises(ApiError) as caught:
        parse_export_query(params, 500)

    assert (caught.value.status, caught.value.code) == (400, code)
