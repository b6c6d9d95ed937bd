"""One error hierarchy for the mover: transient (retry it) or permanent (report it).

::

    MoverError
    ├── TransientError        worth retrying: throttling, 5xx, no response, 409
    │                         AnotherOperationInProgress, 412 stale etag, a NIC
    │                         still updating; may carry the server's Retry-After
    └── PermanentError        retrying cannot help: missing rights, unknown NIC,
                              invalid request, IP outside the subnet

Errors cross the activity boundary as data (``ErrorInfo``), because Durable
passes only a message from an activity to its orchestration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "ErrorInfo",
    "MoverError",
    "PermanentError",
    "TransientError",
    "classify_arm_failure",
]


@dataclass(frozen=True)
class ErrorInfo:
    """A failure as the orchestration and the audit see it."""

    code: str
    message: str
    transient: bool
    retry_after: float | None = None
    status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorInfo:
        """From the JSON form."""
        return cls(**data)


class MoverError(Exception):
    """Base of the mover's errors: a code and a human message."""

    transient = False

    def __init__(
        self,
        code: str,
        message: str,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.status = status

    def info(self) -> ErrorInfo:
        """The error as data."""
        return ErrorInfo(self.code, self.message, self.transient, self.retry_after, self.status)


class TransientError(MoverError):
    """Retrying later may succeed."""

    transient = True


class PermanentError(MoverError):
    """Retrying cannot succeed."""


# ARM error codes that describe a passing state of the resource, not a bad request.
_TRANSIENT_CODES = frozenset(
    {
        "AnotherOperationInProgress",
        "RetryableError",
        "ReferencedResourceNotProvisioned",
        "PreconditionFailed",
        "SubscriptionRequestsThrottled",
        "TooManyRequests",
        "InternalServerError",
        "ServiceUnavailable",
        "GatewayTimeout",
        "OperationNotAllowed",  # e.g. the VM is being updated
        # Someone changed the NIC since we read it: read again and re-plan.
        "PrivateIPAddressInUse",
        "PrivateIPAddressIsAllocated",
    }
)
_TRANSIENT_STATUSES = frozenset({408, 409, 412, 429, 500, 502, 503, 504})


def classify_arm_failure(
    status: int | None,
    code: str | None,
    message: str,
    retry_after: float | None = None,
) -> MoverError:
    """Turn an ARM failure into a transient or permanent error.

    ``status`` None means no usable response (connection refused, reset,
    timed out): always transient. A 409 is transient only when ARM says the
    resource is busy; other conflicts are permanent.
    """
    code = code or (f"HTTP{status}" if status else "NoResponse")
    if status is None:
        return TransientError(code, message, retry_after)
    if code in _TRANSIENT_CODES:
        return TransientError(code, message, retry_after, status)
    if status == 409:
        return PermanentError(code, message, retry_after, status)
    if status in _TRANSIENT_STATUSES:
        return TransientError(code, message, retry_after, status)
    return PermanentError(code, message, retry_after, status)
