"""purge_window: finished requests older than the retention, never a running one or an entity."""

from __future__ import annotations

import datetime as dt

import pytest

from mover.retention import FINISHED_STATUSES, OLDEST, purge_window

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def test_purges_what_was_created_a_retention_ago_or_earlier():
    window = purge_window(NOW, 30)

    assert window.created_from == OLDEST
    assert window.created_to == dt.datetime(2026, 10, 27, 12, 0, tzinfo=dt.UTC)


def test_fractional_days_are_honoured():
    assert purge_window(NOW, 0.5).created_to == dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)
    assert purge_window(NOW, 1 / 86400).created_to == NOW - dt.timedelta(seconds=1)


def test_only_finished_statuses_are_named_never_none():
    # With no finished status named, Durable's purge on Azure Storage filters on
    # no status: running requests and the IP entities would go too.
    statuses = purge_window(NOW, 30).statuses

    assert statuses == FINISHED_STATUSES
    assert set(statuses) == {"Completed", "Failed", "Terminated"}


def test_the_window_is_in_utc_whatever_the_zone_of_now():
    later_zone = dt.timezone(dt.timedelta(hours=9))

    window = purge_window(NOW.astimezone(later_zone), 1)

    assert window.created_to == dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    assert window.created_to.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("days", [1_000_000, 1e300])
def test_a_retention_reaching_before_the_oldest_time_purges_nothing_newer(days):
    assert purge_window(NOW, days).created_to == OLDEST


@pytest.mark.parametrize("days", [0, -1, float("nan"), float("inf")])
def test_retention_must_be_a_positive_number_of_days(days):
    with pytest.raises(ValueError):
        purge_window(NOW, days)


def test_now_must_carry_its_zone():
    with pytest.raises(ValueError):
        purge_window(dt.datetime(2026, 11, 26, 12, 0), 30)
