"""The retention job: purge the instances of finished requests older than the retention.

A timer function with a durable client. The decision (which window, which
statuses) is ``mover.retention.purge_window``; the IPs' history entities keep
every request's record, so the audit outlives the purge.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

import azure.durable_functions as df
import azure.functions as func

from mover.config import ConfigError, current_config
from mover.records import iso
from mover.retention import purge_window

__all__ = ["DEFAULT_SCHEDULE", "PURGE_FINISHED_REQUESTS", "SCHEDULE_SETTING", "bp"]

PURGE_FINISHED_REQUESTS = "purge_finished_requests"
# The app setting with the job's NCRONTAB schedule (seconds first, UTC).
SCHEDULE_SETTING = "MOVER_RETENTION_SCHEDULE"
DEFAULT_SCHEDULE = "0 0 * * * *"  # hourly, on the hour

log = logging.getLogger("mover.retention")

bp = df.Blueprint()


# Read when the worker indexes the app (app settings are its environment): a
# default works where the setting is absent, which "%SETTING%" would not allow.
@bp.timer_trigger(
    arg_name="timer",
    schedule=os.environ.get(SCHEDULE_SETTING) or DEFAULT_SCHEDULE,
    run_on_startup=False,
    use_monitor=True,
)
@bp.durable_client_input(client_name="client")
async def purge_finished_requests(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Purge finished requests created more than ``limits.retentionDays`` ago."""
    try:
        limits = current_config().limits
    except ConfigError as exc:
        log.warning("retention job skipped: %s", exc)
        return
    window = purge_window(dt.datetime.now(dt.UTC), limits.retention_days)
    result = await client.purge_instance_history_by(
        window.created_from,
        window.created_to,
        [df.OrchestrationRuntimeStatus(status) for status in window.statuses],
    )
    log.info(
        "purged %d finished requests created before %s (past due: %s)",
        result.instances_deleted,
        iso(window.created_to),
        timer.past_due,
    )
