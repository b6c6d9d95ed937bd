"""Timer triggers: each timer function runs at its schedule, as the timer extension runs it.

A port of the extension's ``TimerListener`` and ``ScheduleMonitor``
(azure-webjobs-sdk-extensions, ``Extensions/Timers``):

- At start, with ``useMonitor`` (the default, turned off for sub-minute
  schedules) the last recorded status is read; if its ``Next`` occurrence has
  passed, the function runs at once with ``IsPastDue`` true. Otherwise
  ``runOnStartup`` runs it at once; then it runs at each occurrence.
- Invocations of one timer never overlap: the next occurrence is computed from
  when the invocation started, after it ends (an occurrence that passed
  meanwhile runs at once, later ones are skipped).
- The trigger value is the extension's ``TimerInfo`` as the host serializes an
  object for the worker (Newtonsoft defaults, ``TypedData.json``):
  ``{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{...}|null,"IsPastDue":false}``;
  ``ScheduleStatus`` is the status before this invocation, and null without
  the monitor. Trigger metadata: ``TimerTrigger``, the time as text.

The status is kept where the extension's StorageScheduleMonitor keeps it
(``timers/{hostId}/{timerName}/status``), here as
``<state>/timers/Host.Functions.<name>/status``. Times are UTC (Azure's hosts
run on UTC unless ``WEBSITE_TIME_ZONE`` is set, which is not emulated).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import TimerFunction
from .invoker import Invoker
from .schedules import NEVER, Schedule
from .worker.channel import pb

__all__ = [
    "UNSET",
    "ScheduleMonitor",
    "ScheduleStatus",
    "TimerScheduler",
    "dotnet_time",
    "timer_info_json",
]

log = logging.getLogger("emulator.host.timer")

# default(DateTime): "never" in Last and LastUpdated.
UNSET = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
# How many occurrences the host logs when a timer starts.
_SHOWN_OCCURRENCES = 5


@dataclass
class ScheduleStatus:
    """The extension's ScheduleStatus: last run, next occurrence, when it was computed."""

    last: dt.datetime
    next: dt.datetime
    last_updated: dt.datetime

    def to_json(self) -> dict[str, str]:
        """As Newtonsoft writes it (a local DateTime on a UTC host: ``+00:00``)."""
        return {
            "Last": dotnet_time(self.last),
            "Next": dotnet_time(self.next),
            "LastUpdated": dotnet_time(self.last_updated),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleStatus:
        """From the stored JSON."""
        return cls(
            last=_parse(data["Last"]),
            next=_parse(data["Next"]),
            last_updated=_parse(data["LastUpdated"]),
        )


def dotnet_time(moment: dt.datetime) -> str:
    """Newtonsoft's ISO form of a local DateTime on a UTC machine: trailing zeros dropped."""
    moment = moment.astimezone(dt.UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    return text + (f".{fraction}" if fraction else "") + "+00:00"


def _parse(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def timer_info_json(schedule: Schedule, status: ScheduleStatus | None, is_past_due: bool) -> str:
    """The TimerInfo the host hands to the worker (its JSON, property order as declared)."""
    info = {
        "Schedule": {"AdjustForDST": schedule.adjust_for_dst},
        "ScheduleStatus": status.to_json() if status is not None else None,
        "IsPastDue": is_past_due,
    }
    return json.dumps(info, separators=(",", ":"))


class ScheduleMonitor:
    """Schedule status per timer, in files under the state folder."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def get_status(self, timer_name: str) -> ScheduleStatus | None:
        """The recorded status, or None when none was recorded yet."""
        path = self._folder / timer_name / "status"
        try:
            return ScheduleStatus.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def update_status(self, timer_name: str, status: ScheduleStatus) -> None:
        """Record the status (written whole, then renamed into place)."""
        path = self._folder / timer_name / "status"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status.to_json()))
        temporary.replace(path)

    def check_past_due(
        self,
        timer_name: str,
        now: dt.datetime,
        schedule: Schedule,
        last_status: ScheduleStatus | None,
    ) -> dt.timedelta:
        """How long ago the recorded next occurrence passed (zero: not past due).

        ``ScheduleMonitor.CheckPastDueAsync``: records a first status for a new
        timer, and re-bases the status when the schedule changed since it was
        recorded (so that a changed schedule is not past due at once).
        """
        if last_status is None:
            recorded_next = schedule.next_after(now)
            self.update_status(timer_name, ScheduleStatus(UNSET, recorded_next, now))
        else:
            if last_status.last != UNSET:
                expected, last_updated = schedule.next_after(last_status.last), last_status.last
            elif last_status.last_updated != UNSET:
                expected = schedule.next_after(last_status.last_updated)
                last_updated = last_status.last_updated
            else:
                expected, last_updated = schedule.next_after(now), now
            if last_status.next != expected:
                if now > expected:
                    expected, last_updated = schedule.next_after(now), now
                last_status.last = UNSET
                last_status.next = expected
                last_status.last_updated = last_updated
                self.update_status(timer_name, last_status)
            recorded_next = last_status.next
        return now - recorded_next if now > recorded_next else dt.timedelta(0)


class TimerListener:
    """One timer function's schedule loop (the extension's TimerListener)."""

    def __init__(
        self, timer: TimerFunction, invoker: Invoker, monitor: ScheduleMonitor | None
    ) -> None:
        self.timer = timer
        self._invoker = invoker
        self._monitor = monitor if timer.use_monitor else None
        self._stopping = asyncio.Event()
        self.status: ScheduleStatus | None = None

    @property
    def name(self) -> str:
        """The function's name."""
        return self.timer.function.name

    def stop(self) -> None:
        """Run no further invocation (one under way finishes)."""
        self._stopping.set()

    async def run(self) -> None:
        """Start (past-due or startup invocation), then invoke at each occurrence until stopped."""
        schedule = self.timer.schedule
        now = _now()
        log.info(
            "The '%s' function is scheduled (%s, UseMonitor=%s). Next %d occurrences: %s",
            self.name,
            schedule,
            self._monitor is not None,
            _SHOWN_OCCURRENCES,
            ", ".join(dotnet_time(t) for t in _occurrences(schedule, now, _SHOWN_OCCURRENCES)),
        )
        past_due = False
        if self._monitor is not None:
            self.status = self._monitor.get_status(self.timer.timer_name)
            lateness = self._monitor.check_past_due(
                self.timer.timer_name, now, schedule, self.status
            )
            past_due = lateness > dt.timedelta(0)
        if self.status is None:
            self.status = ScheduleStatus(UNSET, schedule.next_after(now), UNSET)
        if past_due:
            log.info("Function '%s' is past due on startup. Executing now.", self.name)
            await self._invoke(_now(), is_past_due=True)
        elif self.timer.run_on_startup:
            log.info("Function '%s' is configured to run on startup. Executing now.", self.name)
            await self._invoke(_now(), run_on_startup=True)
        while not self._stopping.is_set():
            if self.status.next >= NEVER:
                await self._stopping.wait()
                return
            delay = (self.status.next - _now()).total_seconds()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                    return
                except TimeoutError:
                    pass
            await self._invoke(_now())

    async def _invoke(
        self, invocation_time: dt.datetime, is_past_due: bool = False, run_on_startup: bool = False
    ) -> None:
        if self._stopping.is_set():
            return
        assert self.status is not None
        status = self.status if self._monitor is not None else None
        trigger = pb.TypedData(json=timer_info_json(self.timer.schedule, status, is_past_due))
        # TimerTriggerBinding's binding data: DateTime.Now.ToString() (invariant culture assumed).
        metadata = {
            "TimerTrigger": pb.TypedData(string=invocation_time.strftime("%m/%d/%Y %H:%M:%S"))
        }
        outcome = await self._invoker.invoke(self.timer.function, trigger, metadata)
        if outcome.ok:
            log.info("Executed 'Functions.%s' (Succeeded)", self.name)
        else:
            # A failed invocation does not stop the schedule.
            log.error("Executed 'Functions.%s' (Failed): %s", self.name, outcome.error)
        # A timer that fired a little early counts as fired at its occurrence, so
        # that the same occurrence is not due again.
        adjusted = invocation_time
        if not is_past_due and not run_on_startup and self.status.next > invocation_time:
            adjusted = self.status.next
        self.status = ScheduleStatus(adjusted, self.timer.schedule.next_after(adjusted), adjusted)
        if self._monitor is not None:
            self._monitor.update_status(self.timer.timer_name, self.status)


class TimerScheduler:
    """Runs every timer function of the app on the host's event loop."""

    def __init__(self, timers: list[TimerFunction], invoker: Invoker, state_dir: Path) -> None:
        monitor = ScheduleMonitor(state_dir / "timers")
        self._listeners = [TimerListener(t, invoker, monitor) for t in timers]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start each timer's loop."""
        for listener in self._listeners:
            self._tasks.append(asyncio.create_task(self._guarded(listener), name=listener.name))

    async def stop(self) -> None:
        """Stop every timer and wait for invocations under way to finish."""
        for listener in self._listeners:
            listener.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @staticmethod
    async def _guarded(listener: TimerListener) -> None:
        try:
            await listener.run()
        except Exception:
            log.exception("the timer of '%s' stopped", listener.name)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _occurrences(schedule: Schedule, now: dt.datetime, count: int) -> list[dt.datetime]:
    found = []
    moment = now
    for _ in range(count):
        moment = schedule.next_after(moment)
        if moment >= NEVER:
            break
        found.append(moment)
    return found
