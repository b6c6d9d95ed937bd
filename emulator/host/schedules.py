"""Timer schedules as the Functions host reads them: NCRONTAB or a constant interval.

The timer extension (azure-webjobs-sdk-extensions, ``TimerSchedule.Create``)
first resolves ``%SETTING%`` references against the app settings, then tries
NCrontab: 5 fields, or 6 with seconds first (``{second} {minute} {hour} {day}
{month} {day-of-week}``); failing that, a .NET ``TimeSpan`` (a constant
interval). Anything else fails indexing of the function with "The schedule
expression '...' was not recognized as a valid cron expression or timespan
string."

The NCrontab rules here follow its source (atifaziz/NCrontab,
``CrontabFieldImpl``, ``CrontabField.Accumulate``, ``CrontabSchedule``): ``*``,
``a``, ``a-b`` (reversed bounds are swapped), ``*/n``, ``a-b/n``, ``a/n`` (from
a to the field's maximum), comma lists, month and day names by any
case-insensitive prefix (``Jan``, ``mon``), day of week 0-6 with Sunday 0; a
step below 1 counts as 1. A time matches when every field matches: unlike
Vixie cron, day of month and day of week are both required. Occurrences are
computed in UTC, the time zone of Azure's hosts unless ``WEBSITE_TIME_ZONE``
says otherwise (not emulated).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "NEVER",
    "ConstantSchedule",
    "CronSchedule",
    "Schedule",
    "monitor_is_disabled",
    "parse_cron",
    "parse_timer_schedule",
    "resolve_settings",
]

# What NCrontab answers for a schedule that never occurs again (DateTime.MaxValue).
NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@dataclass(frozen=True)
class _Field:
    kind: str
    low: int
    high: int
    names: tuple[str, ...] = ()


_SECOND = _Field("Second", 0, 59)
_MINUTE = _Field("Minute", 0, 59)
_HOUR = _Field("Hour", 0, 23)
_DAY = _Field("Day", 1, 31)
_MONTH = _Field("Month", 1, 12, _MONTHS)
_DAY_OF_WEEK = _Field("DayOfWeek", 0, 6, _DAYS)
_FIELDS = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _DAY_OF_WEEK)

_NUMBER = re.compile(r"[0-9]+")
_STEP = re.compile(r"[+-]?[0-9]+")
# A Gregorian calendar repeats every 400 years: a schedule with no occurrence
# in that span has none at all (e.g. 30 February).
_SEARCH_YEARS = 400


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB schedule: the set of values of each of its six fields."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    has_seconds: bool

    # The extension's CronSchedule.AdjustForDST (obsolete, still serialized in TimerInfo).
    adjust_for_dst = True

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first occurrence strictly after ``moment`` (whole seconds), or NEVER."""
        t = moment.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = t.year + _SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
            elif t.day not in self.days or (t.weekday() + 1) % 7 not in self.days_of_week:
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
            else:
                return t
        return NEVER

    def normalized(self) -> str:
        """The schedule as NCrontab writes it back (a full field as ``*``)."""
        sets = (self.seconds, self.minutes, self.hours, self.days, self.months, self.days_of_week)
        parts = [_format_field(values, f) for values, f in zip(sets, _FIELDS, strict=True)]
        return " ".join(parts if self.has_seconds else parts[1:])

    def __str__(self) -> str:
        return f"Cron: '{self.normalized()}'"


@dataclass(frozen=True)
class ConstantSchedule:
    """A ``TimeSpan`` schedule: every ``interval`` after the previous occurrence."""

    interval: dt.timedelta

    # The extension's ConstantSchedule.AdjustForDST.
    adjust_for_dst = False

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` plus the interval."""
        return moment + self.interval

    def __str__(self) -> str:
        return f"Constant: {_format_timespan(self.interval)}"


Schedule = CronSchedule | ConstantSchedule


def resolve_settings(expression: str, settings: Mapping[str, str]) -> str:
    """Replace each ``%NAME%`` by the app setting NAME, as the WebJobs name resolver does.

    Raises ValueError with the SDK's message for an unclosed ``%`` or an unset name.
    """
    out = []
    i = 0
    while i < len(expression):
        start = expression.find("%", i)
        if start < 0:
            out.append(expression[i:])
            break
        end = expression.find("%", start + 1)
        if end < 0:
            raise ValueError(f"The '%' at position {start} does not have a closing '%'")
        name = expression[start + 1 : end]
        value = settings.get(name)
        if value is None:
            raise ValueError(f"'%{name}%' does not resolve to a value.")
        out.append(expression[i:start])
        out.append(value)
        i = end + 1
    return "".join(out)


def parse_timer_schedule(expression: str, settings: Mapping[str, str]) -> Schedule:
    """The schedule of a timerTrigger binding, as the extension builds it.

    Raises ValueError with the extension's message when it is neither NCRONTAB
    nor a positive TimeSpan (the emulator's reason in parentheses).
    """
    resolved = resolve_settings(expression, settings)
    try:
        return parse_cron(resolved)
    except ValueError as cron_problem:
        interval = _parse_timespan(resolved)
        if interval is None:
            raise ValueError(
                f"The schedule expression '{resolved}' was not recognized as a valid cron "
                f"expression or timespan string. ({cron_problem})"
            ) from None
        if interval <= dt.timedelta(0):
            # .NET accepts it and then fires without pause; not worth emulating.
            raise ValueError(
                f"The schedule expression '{resolved}' is a TimeSpan of zero or less: "
                "the local host does not run such a timer"
            ) from None
        return ConstantSchedule(interval)


def parse_cron(expression: str) -> CronSchedule:
    """Parse an NCRONTAB expression (5 fields, or 6 with seconds). Raises ValueError."""
    tokens = [t for t in expression.split(" ") if t]
    has_seconds = len(tokens) != 5
    if len(tokens) not in (5, 6):
        raise ValueError(
            f"'{expression}' is an invalid crontab expression. It must contain 6 components "
            "of a schedule in the sequence of seconds, minutes, hours, days, months, and "
            "days of week"
        )
    fields = _FIELDS if has_seconds else _FIELDS[1:]
    sets = [_parse_field(token, f) for token, f in zip(tokens, fields, strict=True)]
    if not has_seconds:
        sets.insert(0, frozenset({0}))
    return CronSchedule(expression, *sets, has_seconds=has_seconds)


def monitor_is_disabled(schedule: Schedule, now: dt.datetime) -> bool:
    """Whether the extension turns ``useMonitor`` off for this schedule.

    ``TimerSchedule.Create``: a constant schedule under a minute, or a cron
    schedule whose fields after the first are all ``*`` and that occurs more
    than once in the next minute (a sub-minute schedule such as ``*/10 * * * * *``).
    """
    if isinstance(schedule, ConstantSchedule):
        return schedule.interval < dt.timedelta(minutes=1)
    if any(p != "*" for p in schedule.normalized().split(" ")[1:]):
        return False
    end = now + dt.timedelta(minutes=1)
    first = schedule.next_after(now)
    return first < end and schedule.next_after(first) < end


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    try:
        return frozenset(_field_values(text, field))
    except ValueError as exc:
        raise ValueError(
            f"'{text}' is not a valid [{field.kind}] crontab field expression. ({exc})"
        ) from None


def _field_values(text: str, field: _Field) -> set[int]:
    if not text:
        raise ValueError("A crontab field value cannot be empty.")
    if text.find(",") > 0:
        values: set[int] = set()
        for part in text.split(","):
            values |= _field_values(part, field)
        return values
    step: int | None = None
    slash = text.find("/")
    if slash > 0:
        if not _STEP.fullmatch(text[slash + 1 :]):
            raise ValueError(f"'{text[slash + 1 :]}' is not a number")
        step = max(1, int(text[slash + 1 :]))
        text = text[:slash]
    if text == "*":
        return set(range(field.low, field.high + 1, step or 1))
    dash = text.find("-")
    if dash > 0:
        first, last = _value(text[:dash], field), _value(text[dash + 1 :], field)
        first, last = min(first, last), max(first, last)
        return set(range(_checked(first, field), _checked(last, field) + 1, step or 1))
    value = _checked(_value(text, field), field)
    if step is None:
        return {value}
    return set(range(value, field.high + 1, step))


def _value(text: str, field: _Field) -> int:
    if not text:
        raise ValueError("A crontab field value cannot be empty.")
    if text[0].isdigit():
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"'{text}' is not a number")
        return int(text)
    if not field.names:
        raise ValueError(
            f"'{text}' is not a valid [{field.kind}] crontab field value. It must be a numeric "
            f"value between {field.low} and {field.high} (all inclusive)."
        )
    for index, name in enumerate(field.names):
        if name.lower().startswith(text.lower()):
            return index + field.low
    raise ValueError(
        f"'{text}' is not a known value name. Use one of the following: {', '.join(field.names)}."
    )


def _checked(value: int, field: _Field) -> int:
    if value < field.low:
        raise ValueError(
            f"{value} is lower than the minimum allowable value for the [{field.kind}] field. "
            f"Value must be between {field.low} and {field.high} (all inclusive)."
        )
    if value > field.high:
        raise ValueError(
            f"{value} is higher than the maximum allowable value for the [{field.kind}] field. "
            f"Value must be between {field.low} and {field.high} (all inclusive)."
        )
    return value


def _format_field(values: frozenset[int], field: _Field) -> str:
    """NCrontab's ``CrontabFieldImpl.Format`` without names: ``*``, else runs, a-b."""
    if values == frozenset(range(field.low, field.high + 1)):
        return "*"
    ordered = sorted(values)
    runs: list[str] = []
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(runs)


def _first_of_next_month(t: dt.datetime) -> dt.datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)


_TIMESPAN = re.compile(
    r"\s*(?P<sign>-)?(?:(?P<days>[0-9]+)\.)?(?P<hours>[0-9]+):(?P<minutes>[0-9]+)"
    r"(?::(?P<seconds>[0-9]+)(?:\.(?P<fraction>[0-9]{1,7}))?)?\s*"
)


def _parse_timespan(text: str) -> dt.timedelta | None:
    """.NET ``TimeSpan.TryParse`` for ``[-][d.]hh:mm[:ss[.fffffff]]`` and a bare ``d`` (days)."""
    if re.fullmatch(r"\s*-?[0-9]+\s*", text):
        return dt.timedelta(days=int(text))
    m = _TIMESPAN.fullmatch(text)
    if m is None:
        return None
    hours, minutes = int(m["hours"]), int(m["minutes"])
    seconds = int(m["seconds"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    fraction = int((m["fraction"] or "0").ljust(7, "0")) / 10_000_000
    value = dt.timedelta(
        days=int(m["days"] or 0), hours=hours, minutes=minutes, seconds=seconds + fraction
    )
    return -value if m["sign"] else value


def _format_timespan(value: dt.timedelta) -> str:
    """``TimeSpan.ToString()``: ``[-][d.]hh:mm:ss[.fffffff]``."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.days:
        text = f"{value.days}.{text}"
    if value.microseconds:
        text += f".{value.microseconds * 10:07d}"
    return sign + text
