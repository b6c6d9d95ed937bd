"""What the API shows for a request, from its orchestration instance's status."""

from __future__ import annotations

import functools
import json
from typing import Any

from mover.config import AuthSettings
from mover.records import MoveRequest, RequestRecord, RequestStatus
from mover.tokens import TokenValidator

__all__ = ["json_value", "record_of_instance", "token_validator"]


@functools.cache
def token_validator(settings: AuthSettings) -> TokenValidator:
    """One validator per process: it caches the issuer's signing keys."""
    return TokenValidator(settings)


def record_of_instance(status: Any, request: MoveRequest) -> dict[str, Any]:
    """The audit record of a request from its instance's status.

    Finished: the orchestration's output, which it returns only once the record
    is in the IP's history. Running: its custom status, but never a finished
    one (the outcome is decided, the lock and history not yet done: it stays
    "running" until the history has it). Not yet started: a queued record.
    Crashed or terminated: failed, with the reason.
    """
    runtime = status.runtime_status.value if status.runtime_status else "Pending"
    output = json_value(status.output)
    custom = json_value(status.custom_status)
    if runtime == "Completed" and isinstance(output, dict):
        return output
    record = custom if isinstance(custom, dict) else RequestRecord(request).to_api()
    if runtime in ("Running", "Pending") and record.get("status") in _FINISHED:
        record = {**record, "status": str(RequestStatus.RUNNING), "finishedAt": None}
    if runtime in ("Failed", "Terminated", "Canceled"):
        record = dict(record)
        record["status"] = str(RequestStatus.FAILED)
        code = "terminated" if runtime == "Terminated" else "internal_error"
        record["error"] = {"code": code, "message": str(output)}
    return record


_FINISHED = frozenset(
    str(s) for s in (RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.EXPIRED)
)


def json_value(value: Any) -> Any:
    """A JSON value that Durable may hand back as text (Azure double-encodes client input)."""
    while isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
