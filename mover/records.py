"""Records of move requests: what the orchestration gets, and what the audit keeps."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "MAX_REFUSED_RECORDS",
    "REFUSED_CODE",
    "Action",
    "MoveRequest",
    "RequestLimits",
    "RequestRecord",
    "RequestStatus",
    "Step",
    "append_record",
    "iso",
    "parse_iso",
]


class Action(StrEnum):
    """What a request asks for."""

    ACQUIRE = "acquire"
    RELEASE = "release"


class RequestStatus(StrEnum):
    """Where a request stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def finished(self) -> bool:
        """Whether the request has ended."""
        return self in (RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.EXPIRED)


def iso(moment: dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    """Parse RFC 3339; raises ValueError. A time without zone is refused (ambiguous).

    Times that exist only in their own zone (0001-01-01T00:00+01:00 is before
    year 1 in UTC) are refused too.
    """
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range in UTC") from None


@dataclass(frozen=True)
class RequestLimits:
    """The configuration a request runs with, fixed when it is queued.

    Carried in the orchestration's input so that a replay never sees a
    different configuration than the first run did (an app-setting change
    would otherwise change which entity calls a replay makes).
    """

    lock_lease_seconds: float = 120.0
    lock_poll_seconds: float = 2.0
    history_size: int = 500
    max_pending_per_caller: int = 3
    split_brain_window_seconds: float = 60.0


@dataclass(frozen=True)
class MoveRequest:
    """A validated request: the orchestration's input (JSON-safe via to_dict)."""

    request_id: str
    action: Action
    ip: str
    ip_config_name: str
    cluster: str
    subscription_id: str
    resource_group: str
    member: str
    vm_id: str
    caller_principal: str
    by_operator: bool
    created_at: str
    deadline: str
    context: dict[str, str] = field(default_factory=dict)
    limits: RequestLimits = field(default_factory=RequestLimits)
    # The cluster's member VMs when the request was queued: the IP is never taken
    # from another VM's NIC unless an operator forced it. Empty for requests
    # queued before members were carried (no check then).
    member_vm_ids: tuple[str, ...] = ()
    force: bool = False
    # The members' NICs that the configuration names (VM id → NIC id); the NICs of the
    # other members are learned from their VMs.
    member_nic_ids: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["action"] = str(self.action)
        data["member_vm_ids"] = list(self.member_vm_ids)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoveRequest:
        """From the JSON form (a request queued before limits were carried gets the defaults)."""
        limits = RequestLimits(**data.get("limits") or {})
        members = tuple(data.get("member_vm_ids") or ())
        return cls(
            **{
                **data,
                "action": Action(data["action"]),
                "limits": limits,
                "member_vm_ids": members,
                "member_nic_ids": dict(data.get("member_nic_ids") or {}),
            }
        )


@dataclass
class Step:
    """One step of a move, with its timings and ARM operation."""

    name: str
    started_at: str
    status: str = "running"
    finished_at: str | None = None
    nic: str | None = None
    arm_operation_id: str | None = None
    attempt: int = 1
    error: dict[str, Any] | None = None
    # Codes of the failed attempts that were retried (the last ten).
    retried: list[str] = field(default_factory=list)


@dataclass
class RequestRecord:
    """The audit record of a request: kept as custom status, output and in the IP's history."""

    request: MoveRequest
    status: RequestStatus = RequestStatus.QUEUED
    locked_at: str | None = None
    finished_at: str | None = None
    from_nics: list[str] = field(default_factory=list)
    to_nic: str | None = None
    unassigned: bool = False
    steps: list[Step] = field(default_factory=list)
    error: dict[str, Any] | None = None
    queue_position: int | None = None
    # Set when the record enters the IP's history (mover/split_brain.py).
    split_brain: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """The record as the HTTP API shows it."""
        r = self.request
        return {
            "requestId": r.request_id,
            "ip": r.ip,
            "action": str(r.action),
            "cluster": r.cluster,
            "status": str(self.status),
            "caller": {"member": r.member, "vm": r.vm_id, "byOperator": r.by_operator},
            "context": r.context,
            "createdAt": r.created_at,
            "deadline": r.deadline,
            "lockedAt": self.locked_at,
            "finishedAt": self.finished_at,
            "queuePosition": self.queue_position,
            "fromNics": self.from_nics,
            "toNic": self.to_nic,
            "unassigned": self.unassigned,
            "steps": _bounded_steps([_step_to_api(s) for s in self.steps]),
            "error": self.error,
            "splitBrain": self.split_brain,
        }


# Custom status is limited to 16 KB in Azure: long retry stories keep their
# first and last steps.
_MAX_STEPS_SHOWN = 24


def _bounded_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(steps) <= _MAX_STEPS_SHOWN:
        return steps
    head, tail = steps[:4], steps[-(_MAX_STEPS_SHOWN - 5) :]
    omitted = len(steps) - len(head) - len(tail)
    gap = {"name": "omitted", "status": f"{omitted} steps not shown", "startedAt": None}
    return [*head, gap, *tail]


def _step_to_api(step: Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "status": step.status,
        "startedAt": step.started_at,
        "finishedAt": step.finished_at,
        "nic": step.nic,
        "armOperationId": step.arm_operation_id,
        "attempt": step.attempt,
        "retried": step.retried,
        "error": step.error,
    }


# Refused requests (too many pending from one caller) did nothing: the history
# keeps only the newest few of them, so a flood cannot push real records out.
MAX_REFUSED_RECORDS = 10
REFUSED_CODE = "too_many_pending"


def append_record(
    records: list[dict[str, Any]], record: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """The IP's history with ``record`` appended (newest last, at most ``limit``).

    A replayed append (at-least-once delivery) replaces, never duplicates; of
    refused requests only the newest MAX_REFUSED_RECORDS are kept.
    """
    kept = [r for r in records if r.get("requestId") != record["requestId"]]
    kept.append(record)
    refused = [i for i, r in enumerate(kept) if _error_code(r) == REFUSED_CODE]
    dropped = set(refused[:-MAX_REFUSED_RECORDS])
    kept = [r for i, r in enumerate(kept) if i not in dropped]
    return kept[-limit:]


def _error_code(record: dict[str, Any]) -> str | None:
    error = record.get("error")
    return error.get("code") if isinstance(error, dict) else None
