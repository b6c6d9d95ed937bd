"""Timer schedules: NCRONTAB as NCrontab reads it, TimeSpans, %SETTING% references."""

from __future__ import annotations

import datetime as dt

import pytest

from emulator.host.schedules import (
    NEVER,
    ConstantSchedule,
    CronSchedule,
    monitor_is_disabled,
    parse_cron,
    parse_timer_schedule,
    resolve_settings,
)

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def next_n(schedule: CronSchedule, start: str, n: int) -> list[str]:
    moments = []
    moment = at(start)
    for _ in range(n):
        moment = schedule.next_after(moment)
        moments.append(moment.strftime("%Y-%m-%dT%H:%M:%S"))
    return moments


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("* * * * * *", "2024-05-01T10:00:00.5", ["2024-05-01T10:00:01", "2024-05-01T10:00:02"]),
        ("*/15 * * * * *", "2024-05-01T10:00:14", ["2024-05-01T10:00:15", "2024-05-01T10:00:30"]),
        ("0 0 * * * *", "2024-05-01T10:00:00", ["2024-05-01T11:00:00", "2024-05-01T12:00:00"]),
        ("0 30 9 * * 1-5", "2024-05-03T09:30:00", ["2024-05-06T09:30:00", "2024-05-07T09:30:00"]),
        (
            "0 0 0 1 Jan,jul *",
            "2024-02-01T00:00:00",
            ["2024-07-01T00:00:00", "2025-01-01T00:00:00"],
        ),
        ("5/20 * * * * *", "2024-05-01T10:00:00", ["2024-05-01T10:00:05", "2024-05-01T10:00:25"]),
        (
            "10-20/5 * * * * *",
            "2024-05-01T10:00:12",
            ["2024-05-01T10:00:15", "2024-05-01T10:00:20"],
        ),
        # Reversed bounds are swapped, as NCrontab does: Sat-Mon is Monday to Saturday.
        (
            "0 0 12 * * Sat-Mon",
            "2024-05-04T13:00:00",
            ["2024-05-06T12:00:00", "2024-05-07T12:00:00"],
        ),
        # Day of month AND day of week (NCrontab), not OR as in Vixie cron: Friday the 13th.
        ("0 0 0 13 * 5", "2024-01-01T00:00:00", ["2024-09-13T00:00:00", "2024-12-13T00:00:00"]),
        # Five fields: minutes first, seconds are 0.
        ("*/30 * * * *", "2024-05-01T10:00:00", ["2024-05-01T10:30:00", "2024-05-01T11:00:00"]),
        ("0 0 0 29 2 *", "2024-03-01T00:00:00", ["2028-02-29T00:00:00", "2032-02-29T00:00:00"]),
    ],
)
def test_next_occurrences_follow_ncrontab(expression: str, start: str, expected: list[str]) -> None:
    assert next_n(parse_cron(expression), start, len(expected)) == expected


def test_a_schedule_that_never_occurs_answers_never() -> None:
    assert parse_cron("0 0 0 30 2 *").next_after(at("2024-01-01T00:00:00")) == NEVER


def test_normalized_form_writes_full_fields_as_star_and_runs_as_ranges() -> None:
    assert parse_cron("*/1 0-59 * 1-31 * 0-6").normalized() == "* * * * * *"
    assert parse_cron("0 0,1,2,5 * * * *").normalized() == "0 0-2,5 * * * *"
    assert parse_cron("*/15 * * * *").normalized() == "0,15,30,45 * * * *"


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",
        "* * * * * * *",
        "60 * * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * * 13 *",
        "* * * * * 7",
        "* * * * Foo *",
        "1,,2 * * * * *",
        "*/x * * * * *",
        "5x * * * * *",
        "every minute",
    ],
)
def test_invalid_cron_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        parse_cron(expression)


def test_timer_schedule_resolves_settings_then_tries_cron_then_timespan() -> None:
    settings = {"EVERY": "*/5 * * * * *", "SPAN": "00:10:00"}
    assert (
        parse_timer_schedule("%EVERY%", settings).normalized()
        == "0,5,10,15,20,25,30,35,40,45,50,55 * * * * *"
    )
    span = parse_timer_schedule("%SPAN%", settings)
    assert span == ConstantSchedule(dt.timedelta(minutes=10))
    assert str(span) == "Constant: 00:10:00"
    assert parse_timer_schedule("1.02:03:04", {}) == ConstantSchedule(
        dt.timedelta(days=1, hours=2, minutes=3, seconds=4)
    )


def test_an_unrecognized_schedule_gets_the_extensions_message() -> None:
    with pytest.raises(ValueError) as refused:
        parse_timer_schedule("0 0 25 * * *", {})
    assert str(refused.value).startswith(
        "The schedule expression '0 0 25 * * *' was not recognized as a valid cron expression "
        "or timespan string."
    )


def test_setting_references_resolve_as_the_webjobs_name_resolver() -> None:
    assert resolve_settings("0 %M% * * * *", {"M": "5"}) == "0 5 * * * *"
    with pytest.raises(ValueError, match=r"'%MISSING%' does not resolve to a value\."):
        resolve_settings("%MISSING%", {})
    with pytest.raises(ValueError, match="does not have a closing '%'"):
        resolve_settings("%OPEN", {})


@pytest.mark.parametrize(
    ("expression", "disabled"),
    [
        ("* * * * * *", True),
        ("*/10 * * * * *", True),
        ("0 * * * * *", False),
        ("0 0 * * * *", False),
        ("*/10 5 * * * *", False),
        ("* * * * *", False),
        ("00:00:30", True),
        ("00:05:00", False),
    ],
)
def test_use_monitor_is_turned_off_for_sub_minute_schedules(
    expression: str, disabled: bool
) -> None:
    schedule = parse_timer_schedule(expression, {})
    assert monitor_is_disabled(schedule, at("2024-05-01T10:00:00.25")) is disabled
