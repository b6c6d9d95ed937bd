"""ARM-style throttling: token buckets per subscription and principal, reads and writes apart.

ARM refills each bucket continuously (``rate`` per second) up to ``burst``; a request
that finds its bucket empty gets 429 SubscriptionRequestsThrottled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .settings import Settings

__all__ = ["ThrottleDecision", "Throttler", "TokenBucket"]


@dataclass
class TokenBucket:
    """Tokens available now, and when they were last counted."""

    tokens: float
    updated: float

    def take(self, rate: float, burst: int, now: float) -> bool:
        """Refill for the time passed, then take one token if there is one."""
        self.tokens = min(float(burst), self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class ThrottleDecision:
    """Whether a request may run, what the remaining-header says, and the wait if not."""

    allowed: bool
    remaining: int
    retry_after: int


class Throttler:
    """All buckets; limits are read from ``settings`` on each request (changeable live)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def check(self, subscription: str, principal: str, kind: str, now: float) -> ThrottleDecision:
        """Take a token for a ``kind`` ("read" or "write") request of ``principal``."""
        if kind == "write":
            rate, burst = self.settings.write_rate, self.settings.write_burst
        else:
            rate, burst = self.settings.read_rate, self.settings.read_burst
        key = (subscription.lower(), principal, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(float(burst), now)
        allowed = bucket.take(rate, burst, now)
        if allowed:
            return ThrottleDecision(True, int(bucket.tokens), 0)
        wait = math.ceil((1.0 - bucket.tokens) / rate) if rate > 0 else 60
        return ThrottleDecision(False, 0, max(1, wait))

    def reset(self) -> None:
        """Forget all buckets (they start full again)."""
        self._buckets.clear()
