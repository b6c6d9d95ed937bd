"""Long-running NIC operations: the record behind an ``Azure-AsyncOperation`` URL.

Operations finish lazily: whoever reads state first calls ``AzureState.settle``,
which completes every operation whose deadline has passed. No timers, and a
restart completes what finished while the emulator was down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Operation", "new_operation"]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Operation:
    """One PUT of a NIC; its id is the PUT's ``x-ms-request-id``, as in ARM's recordings.

    ``sync`` operations were answered in the PUT itself (Succeeded or Failed, no
    Retry-After); their NIC keeps the etag the PUT answered with.
    """

    id: str
    nic: str
    location: str
    started: float
    done_at: float
    status: str = "InProgress"
    fail_code: str | None = None
    fail_message: str | None = None
    sync: bool = False

    @property
    def finished(self) -> bool:
        """True once the operation reached Succeeded or Failed."""
        return self.status != "InProgress"

    def body(self) -> dict[str, Any]:
        """What polling the ``Azure-AsyncOperation`` URL returns."""
        body: dict[str, Any] = {"status": self.status}
        if self.status == "Failed":
            body["error"] = {
                "code": self.fail_code or "InternalServerError",
                "message": self.fail_message or "An error occurred.",
                "details": [],
            }
        return body

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (persisted and shown by the control API)."""
        record = asdict(self)
        record["started_at"] = _iso(self.started)
        return record

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Operation:
        """Inverse of ``to_dict``."""
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def new_operation(
    operation_id: str, nic: str, location: str, now: float, seconds: float, sync: bool = False
) -> Operation:
    """An InProgress operation for ``nic`` that finishes ``seconds`` after ``now``."""
    return Operation(
        id=operation_id,
        nic=nic,
        location=location,
        started=now,
        done_at=now + seconds,
        sync=sync,
    )
