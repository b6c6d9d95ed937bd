"""ARM's request budget as this process sees it: spend it by design, not by 429s.

ARM throttles each identity per subscription with token buckets (reads: 250 tokens,
25 per second; writes and deletes: 200, 10 per second; Microsoft's "request limits
and throttling" page) and says after every answer how many tokens are left
(``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``).

A burst of moves that sends every call as soon as it can empties the bucket at
once, and then most calls come back 429, each costing a round trip and a retry
after ARM's ``Retry-After`` (whole seconds). Instead, each call takes a token from
an estimate of ARM's bucket before it is sent, waiting (without a thread) until
one is due: the calls of a burst go out at the rate ARM refills, in the order
they asked, and moves that need a few calls all progress together. The estimate
follows ARM's own count (never more optimistic than the last header), and a 429
holds every call until ARM's ``Retry-After``. Several processes (or instances)
share one bucket at ARM; each starts from its share and then follows ARM's count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ArmBudget", "BucketEstimate", "BucketLimits", "request_kind"]


@dataclass(frozen=True)
class BucketLimits:
    """One of ARM's token buckets: its size and refill rate per second."""

    burst: float
    rate: float


# Microsoft's published limits per subscription and identity (since 2024).
ARM_LIMITS: dict[str, BucketLimits] = {
    "read": BucketLimits(burst=250, rate=25),
    "write": BucketLimits(burst=200, rate=10),
    "delete": BucketLimits(burst=200, rate=10),
}


def request_kind(method: str) -> str:
    """Which of ARM's buckets an HTTP method draws from."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "read"
    if method == "DELETE":
        return "delete"
    return "write"


@dataclass
class BucketEstimate:
    """One bucket as this process estimates it.

    ``tokens`` counts what is left after the calls already waiting for their turn, so
    it goes below zero when calls wait. ``rate`` is this process's share of ARM's
    refill between ARM's answers; every answer re-bases the estimate on ARM's count.
    """

    limits: BucketLimits
    tokens: float
    updated: float
    rate: float
    blocked_until: float = 0.0
    waiting: int = 0  # reserved, not yet sent
    in_flight: int = 0  # sent, not yet answered

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.limits.burst, self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)

    def reserve(self, now: float) -> float:
        """Take the next token: how long to wait before sending (0: at once)."""
        self._refill(now)
        self.tokens -= 1
        self.waiting += 1
        due = -self.tokens / self.rate if self.tokens < 0 else 0.0
        return max(due, self.blocked_until - now, 0.0)

    def give_back(self, now: float) -> None:
        """Return a token that was reserved but will not be spent (the call is not sent)."""
        self._refill(now)
        self.waiting = max(0, self.waiting - 1)
        self.tokens = min(self.limits.burst, self.tokens + 1)

    def sent(self) -> None:
        """A reserved call goes out now."""
        self.waiting = max(0, self.waiting - 1)
        self.in_flight += 1

    def answered(self, now: float, remaining: float | None) -> None:
        """ARM answered a call, saying how many tokens it has left (None: not said).

        The estimate becomes ARM's count less the calls ARM may not have counted yet
        (ours still in flight, and those waiting for their turn): it follows ARM down
        when other processes spend the bucket, and up when they do not.
        """
        self._refill(now)
        self.in_flight = max(0, self.in_flight - 1)
        if remaining is not None:
            self.tokens = min(self.limits.burst, remaining) - self.in_flight - self.waiting

    def throttled(self, now: float, retry_after: float | None) -> None:
        """ARM refused a call (429): nothing more is sent before its Retry-After."""
        self._refill(now)
        self.in_flight = max(0, self.in_flight - 1)
        self.tokens = min(self.tokens, -float(self.waiting))
        wait = retry_after if retry_after is not None else 1.0 / self.limits.rate
        self.blocked_until = max(self.blocked_until, now + wait)


@dataclass
class ArmBudget:
    """The buckets of one process, per (subscription, kind)."""

    # This process's share of ARM's bucket and refill until ARM's answers tell more:
    # processes that start together must not each spend the whole burst at once.
    share: float = 1.0
    limits: dict[str, BucketLimits] = field(default_factory=lambda: dict(ARM_LIMITS))
    _buckets: dict[tuple[str, str], BucketEstimate] = field(default_factory=dict)

    def bucket(self, subscription: str, kind: str, now: float) -> BucketEstimate:
        """The estimate for this subscription's bucket of ``kind``."""
        key = (subscription.lower(), kind)
        found = self._buckets.get(key)
        if found is None:
            limits = self.limits[kind]
            found = self._buckets[key] = BucketEstimate(
                limits, limits.burst * self.share, now, limits.rate * self.share
            )
        return found
