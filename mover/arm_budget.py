"""ARM's request budget as this process sees it: spend it by design, not by 429s.

ARM throttles each identity per subscription with token buckets (reads: 250 tokens,
25 per second; writes and deletes: 200, 10 per second; Microsoft's "request limits
and throttling" page) and says after every answer how many tokens are left
(``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``).

A burst of moves that sends every call as soon as it can empties the bucket at
once, and then most calls come back 429, each costing a round trip and a retry
after ARM's ``Retry-After`` (whole seconds). Instead, each call takes a token from
an estimate of ARM's bucket before it is sent, waiting (without a thread) until
one is due: the calls of a burst go out at the rate ARM refills, the oldest
move's first, so that moves finish one after the other and the early ones write
while later ones still read. The estimate follows ARM's own count (never more
optimistic than the last header), and a 429 holds every call until ARM's
``Retry-After``. Several processes (or instances) share one bucket at ARM; each
counts on its share of the refill and of the count ARM reports.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from .errors import TransientError

__all__ = [
    "ARM_CALL_PRIORITY",
    "ArmBudget",
    "BucketEstimate",
    "BucketLimits",
    "BudgetGate",
    "request_kind",
]

# The priority of the ARM calls made in this context: the time the move they serve
# was requested (epoch seconds; the oldest goes first). Unset: now.
ARM_CALL_PRIORITY: ContextVar[float | None] = ContextVar("ARM_CALL_PRIORITY", default=None)


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

    ``tokens`` counts what is left for calls not yet sent. ``share`` is this
    process's part of ARM's bucket: of its refill between ARM's answers, and of the
    count every answer re-bases the estimate on.
    """

    limits: BucketLimits
    tokens: float
    updated: float
    share: float = 1.0
    blocked_until: float = 0.0
    in_flight: int = 0  # sent, not yet answered

    @property
    def rate(self) -> float:
        """This process's share of ARM's refill, tokens per second."""
        return self.limits.rate * self.share

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.limits.burst, self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)

    def wait_for_turn(self, ahead: int, now: float) -> float:
        """Seconds before a call with ``ahead`` calls before it may be sent (0: now)."""
        self._refill(now)
        due = (ahead + 1 - self.tokens) / self.rate if self.tokens < ahead + 1 else 0.0
        return max(due, self.blocked_until - now, 0.0)

    def take(self, now: float) -> None:
        """A call goes out now, with a token (the caller waited for its turn)."""
        self._refill(now)
        self.tokens -= 1
        self.in_flight += 1

    def answered(self, now: float, remaining: float | None) -> None:
        """ARM answered a call, saying how many tokens it has left (None: not said).

        The estimate becomes this process's share of ARM's count less the calls ARM
        may not have counted yet (ours still in flight): it follows ARM down when
        other processes spend the bucket, and up when they do not. Only the share:
        every process hears the same count, and if each took all of it the bucket
        would be spent as many times over (429s).
        """
        self._refill(now)
        self.in_flight = max(0, self.in_flight - 1)
        if remaining is not None:
            self.tokens = min(self.limits.burst, remaining) * self.share - self.in_flight

    def throttled(self, now: float, retry_after: float | None) -> None:
        """ARM refused a call (429): nothing more is sent before its Retry-After."""
        self._refill(now)
        self.in_flight = max(0, self.in_flight - 1)
        self.tokens = min(self.tokens, 0.0)
        wait = retry_after if retry_after is not None else 1.0 / self.limits.rate
        self.blocked_until = max(self.blocked_until, now + wait)


class BudgetGate:
    """The calls of this process waiting for one bucket's tokens: the oldest request's
    first (``priority``: lower goes first; equal, first come), so that in a burst the
    moves finish one after the other, each writing while later ones still read,
    instead of all reading first and writing last.

    A call whose turn is further off than ``max_wait`` seconds is not queued:
    ``TransientError("ArmBudgetExhausted")`` with that wait as its Retry-After, for
    the orchestration to sleep on a durable timer. Runs on the process's event loop.
    """

    # How often a sleeping gate looks again (ARM's answers may have raised the estimate).
    _RECHECK_SECONDS = 0.25

    def __init__(
        self, bucket: BucketEstimate, max_wait: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._bucket = bucket
        self._max_wait = max_wait
        self._clock = clock
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._releaser: asyncio.Task[None] | None = None

    @property
    def bucket(self) -> BucketEstimate:
        """The estimate the gate spends."""
        return self._bucket

    async def turn(self, priority: float, kind: str = "read") -> None:
        """Return when this call may be sent (its token taken)."""
        now = self._clock()
        if not self._waiting and self._bucket.wait_for_turn(0, now) == 0:
            self._bucket.take(now)
            return
        ahead = sum(1 for p, _, waiter in self._waiting if p <= priority and not waiter.done())
        wait = self._bucket.wait_for_turn(ahead, now)
        if wait > self._max_wait:
            raise TransientError(
                "ArmBudgetExhausted",
                f"ARM's {kind} budget for this identity is spent for the next {wait:.1f} s",
                retry_after=wait,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), waiter))
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.get_running_loop().create_task(self._release())
        await waiter

    async def _release(self) -> None:
        while self._waiting:
            if self._waiting[0][2].done():  # given up (cancelled)
                heapq.heappop(self._waiting)
                continue
            delay = self._bucket.wait_for_turn(0, self._clock())
            if delay > 0:
                await asyncio.sleep(min(delay, self._RECHECK_SECONDS))
                continue
            _, _, waiter = heapq.heappop(self._waiting)
            self._bucket.take(self._clock())
            waiter.set_result(None)


@dataclass
class ArmBudget:
    """The buckets of one process, per (subscription, kind), each behind its gate."""

    # This process's share of ARM's bucket and refill until ARM's answers tell more:
    # processes that start together must not each spend the whole burst at once.
    share: float = 1.0
    limits: dict[str, BucketLimits] = field(default_factory=lambda: dict(ARM_LIMITS))
    # Longest a call waits in the process for its turn (see BudgetGate).
    max_wait: float = 10.0
    _gates: dict[tuple[str, str], BudgetGate] = field(default_factory=dict)

    def bucket(self, subscription: str, kind: str, now: float) -> BucketEstimate:
        """The estimate for this subscription's bucket of ``kind``."""
        return self.gate(subscription, kind, now).bucket

    def gate(self, subscription: str, kind: str, now: float) -> BudgetGate:
        """The gate of this subscription's bucket of ``kind``."""
        key = (subscription.lower(), kind)
        found = self._gates.get(key)
        if found is None:
            limits = self.limits[kind]
            bucket = BucketEstimate(limits, limits.burst * self.share, now, self.share)
            found = self._gates[key] = BudgetGate(bucket, self.max_wait)
        return found
