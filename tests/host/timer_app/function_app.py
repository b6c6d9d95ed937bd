"""Timer functions for the timer tests: run on startup, past due, schedule from a setting.

Each invocation appends what the function received to ``<TIMER_APP_OUT>/<name>.jsonl``.
Kept under tests/: not part of the product.
"""

import json
import os
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()

_OUT = Path(os.environ.get("TIMER_APP_OUT", "/tmp"))
# 1 January at midnight: never due while a test runs.
_YEARLY = "0 0 0 1 1 *"


def _record(name: str, timer: func.TimerRequest) -> None:
    record = {
        "past_due": timer.past_due,
        "schedule": timer.schedule,
        "schedule_status": timer.schedule_status,
    }
    with (_OUT / f"{name}.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


@app.timer_trigger(arg_name="timer", schedule=_YEARLY, run_on_startup=True, use_monitor=False)
def on_startup(timer: func.TimerRequest) -> None:
    """Runs once when the host starts."""
    _record("on_startup", timer)


@app.timer_trigger(arg_name="timer", schedule=_YEARLY)
def yearly(timer: func.TimerRequest) -> None:
    """Monitored: runs at start when its recorded next occurrence has passed."""
    _record("yearly", timer)


@app.timer_trigger(arg_name="timer", schedule="%TIMER_APP_SCHEDULE%")
def from_setting(timer: func.TimerRequest) -> None:
    """Runs at the schedule the app setting names."""
    _record("from_setting", timer)


@app.timer_trigger(arg_name="timer", schedule="* * * * * *")
def failing(timer: func.TimerRequest) -> None:
    """Fails every second; the schedule goes on."""
    _record("failing", timer)
    raise RuntimeError("timer function failed")
