"""Which orchestration instances the retention job purges.

Each request is one ``move_ip`` instance (instance id = request id). Once a
request is finished and older than ``limits.retentionDays``, its instance and
history are purged; the request's record stays in the IP's history entity,
which is never purged.

Durable's purge by filter on Azure Storage has a trap: its status filter keeps
only finished statuses and, when none is given, **filters on no status at
all**, deleting running instances and entities (the IP locks and histories)
created in the window. So the window always names the finished statuses.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

__all__ = ["FINISHED_STATUSES", "OLDEST", "PurgeWindow", "purge_window"]

# How a request's instance can end: the move finished (Completed), the
# orchestrator crashed (Failed), or an operator terminated it.
FINISHED_STATUSES = ("Completed", "Failed", "Terminated")
# Durable's purge requires a lower bound; nothing of the mover's is older.
OLDEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PurgeWindow:
    """Instances created in ``[created_from, created_to]`` whose status is one of ``statuses``."""

    created_from: dt.datetime
    created_to: dt.datetime
    statuses: tuple[str, ...]


def purge_window(now: dt.datetime, retention_days: float) -> PurgeWindow:
    """The finished instances created at least ``retention_days`` before ``now``.

    Raises ValueError for a naive ``now`` (the SDK writes every time as UTC)
    or a retention that is not a positive number of days.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not math.isfinite(retention_days) or retention_days <= 0:
        raise ValueError(f"retention must be a positive number of days, not {retention_days}")
    now = now.astimezone(dt.UTC)
    if retention_days * 86400 >= (now - OLDEST).total_seconds():
        return PurgeWindow(OLDEST, OLDEST, FINISHED_STATUSES)
    return PurgeWindow(OLDEST, now - dt.timedelta(days=retention_days), FINISHED_STATUSES)
