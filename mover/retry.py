"""How long to wait before retrying a transient failure, within the request's deadline."""

from __future__ import annotations

from .errors import ErrorInfo

__all__ = ["retry_delay"]

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 15.0

# Failures that a fresh read (or a renewed lease) fixes at once: a stale etag, a
# NIC that changed under us, a write that ran late. Retried without waiting the
# first two times.
_REREAD_CODES = frozenset(
    {"PreconditionFailed", "PrivateIPAddressInUse", "PrivateIPAddressIsAllocated", "LeaseExpiring"}
)


def retry_delay(attempt: int, error: ErrorInfo, now: float, deadline: float) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up.

    Exponential from 1 s, capped at 15 s; never shorter than the server's
    Retry-After; None for a permanent error or when the retry could not start
    before the deadline.
    """
    if not error.transient:
        return None
    if error.code in _REREAD_CODES and attempt <= 2:
        delay = 0.0
    else:
        delay = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** (attempt - 1))
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    if now + delay >= deadline:
        return None
    return delay
