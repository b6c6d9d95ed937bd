"""Split brain made visible: an acquire that took the IP from a member that had just acquired it.

The mover serializes moves, so two nodes that both start the failover group both
succeed, one after the other: the second takes the IP from the first a few
seconds after the first got it, and the first node's start script has already
exited 0. Nothing is wrong with either move; what is wrong is that the cluster
started the group twice. This decision spots that pattern in the IP's history
when a record is appended, so the audit says so and the nodes can log it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .records import parse_iso

__all__ = ["SplitBrain", "suspect_split_brain"]


@dataclass(frozen=True)
class SplitBrain:
    """The acquire this record overtook: who had acquired the IP, when, and how soon after."""

    took_from: str | None  # the member that had acquired it (its name in the record)
    nic: str  # the NIC the IP was taken from
    request_id: str  # that member's acquire
    acquired_at: str  # when that acquire finished
    taken_at: str  # when this request started removing the IP from that NIC
    seconds_after: float
    window_seconds: float
    # This request was queued before that acquire had finished: both nodes were
    # starting the group at the same time (not one failing over right after the other).
    overlapped: bool

    def to_api(self) -> dict[str, Any]:
        """The record's ``splitBrain`` field."""
        return {
            "tookFrom": self.took_from,
            "nic": self.nic,
            "acquiredBy": self.request_id,
            "acquiredAt": self.acquired_at,
            "takenAt": self.taken_at,
            "secondsAfter": round(self.seconds_after, 3),
            "windowSeconds": self.window_seconds,
            "overlapped": self.overlapped,
        }


def suspect_split_brain(
    history: Sequence[dict[str, Any]], record: dict[str, Any], window_seconds: float
) -> SplitBrain | None:
    """Whether ``record`` took its IP from a member that acquired it at most
    ``window_seconds`` earlier, per ``history`` (API records, oldest first).

    Only a succeeded or failed acquire that really removed the IP from a NIC
    (a ``remove_ip_config`` step that succeeded) counts; the earlier acquire is
    the newest succeeded one that put the IP on that NIC. None otherwise, and
    for records that are not API records (nothing to judge).
    """
    if record.get("action") != "acquire":
        return None
    removed = _removals(record)
    if not removed:
        return None
    for earlier in reversed(history):
        if earlier.get("requestId") == record.get("requestId"):
            continue  # a replayed append of this very record
        if earlier.get("action") != "acquire" or earlier.get("status") != "succeeded":
            continue
        nic = str(earlier.get("toNic") or "")
        if nic.lower() not in removed:
            continue
        taken_at = removed[nic.lower()]
        try:
            acquired = parse_iso(str(earlier["finishedAt"]))
            taken = parse_iso(taken_at)
        except (KeyError, ValueError):
            return None
        gap = (taken - acquired).total_seconds()
        if gap > window_seconds:
            return None  # the newest acquire of that NIC is older than the window
        created = _when(record.get("createdAt"))
        caller = earlier.get("caller") if isinstance(earlier.get("caller"), dict) else {}
        return SplitBrain(
            took_from=caller.get("member"),
            nic=nic,
            request_id=str(earlier.get("requestId")),
            acquired_at=str(earlier["finishedAt"]),
            taken_at=taken_at,
            # The lock orders the two moves; a negative gap is only clock rounding.
            seconds_after=max(0.0, gap),
            window_seconds=window_seconds,
            overlapped=created is not None and created < acquired,
        )
    return None


def _removals(record: dict[str, Any]) -> dict[str, str]:
    """NIC id (lower case) → when the first succeeded removal of the IP from it started."""
    found: dict[str, str] = {}
    for step in record.get("steps") or ():
        if not isinstance(step, dict) or step.get("name") != "remove_ip_config":
            continue
        if step.get("status") != "succeeded" or not step.get("nic") or not step.get("startedAt"):
            continue
        found.setdefault(str(step["nic"]).lower(), str(step["startedAt"]))
    return found


def _when(text: Any) -> dt.datetime | None:
    try:
        return parse_iso(str(text)) if text else None
    except ValueError:
        return None
