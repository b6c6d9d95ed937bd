"""ARM's token buckets as the app estimates them (mover.arm_budget)."""

from __future__ import annotations

import asyncio
import time

import pytest

from mover.arm_budget import ArmBudget, BucketEstimate, BucketLimits, BudgetGate, request_kind
from mover.errors import TransientError

READS = BucketLimits(burst=4, rate=2)


def budget(share: float = 1.0) -> ArmBudget:
    return ArmBudget(share=share, limits={"read": READS, "write": READS, "delete": READS})


def sent_at_once(bucket: BucketEstimate, calls: int, now: float = 0.0) -> int:
    """How many of ``calls`` may go out now, one after the other."""
    sent = 0
    for _ in range(calls):
        if bucket.wait_for_turn(0, now) > 0:
            break
        bucket.take(now)
        sent += 1
    return sent


def test_a_fresh_bucket_sends_its_burst_at_once_then_one_call_per_refill() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    assert sent_at_once(bucket, 7) == 4
    assert [bucket.wait_for_turn(ahead, 0.0) for ahead in range(3)] == [0.5, 1.0, 1.5]


def test_calls_asked_later_wait_only_for_their_own_token() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    assert sent_at_once(bucket, 4) == 4
    assert bucket.wait_for_turn(0, 10.0) == 0  # refilled meanwhile (up to the burst)
    assert sent_at_once(bucket, 5, now=10.0) == 4


def test_processes_start_from_their_share_of_the_burst_and_the_refill() -> None:
    bucket = budget(share=0.5).bucket("sub", "read", now=0.0)
    assert sent_at_once(bucket, 3) == 2  # 2 tokens
    assert bucket.wait_for_turn(0, 0.0) == 1.0  # then 1 per second


def test_arms_count_rebases_the_estimate_less_the_calls_it_may_not_have_counted() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    assert sent_at_once(bucket, 3) == 3
    bucket.answered(0.0, remaining=2)  # ARM counted one call; two are still in flight
    assert bucket.tokens == 2 - 2
    bucket.answered(0.0, remaining=0)  # another process spent the rest
    # 0 left, 1 in flight: the next call waits for a token, at 2 per second.
    assert bucket.tokens == -1
    assert bucket.wait_for_turn(0, 0.0) == pytest.approx(1.0)


def test_arm_saying_more_is_left_raises_the_estimate_up_to_the_burst() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    assert sent_at_once(bucket, 4) == 4
    bucket.answered(0.0, remaining=200)
    assert bucket.tokens == READS.burst - 3  # three calls still in flight


def test_processes_sharing_a_bucket_each_count_on_their_share_of_what_arm_says_is_left() -> None:
    """Both processes hear the same count: together they must not spend more than it."""
    shared = [budget(share=0.5).bucket("sub", "read", now=0.0) for _ in range(2)]
    for bucket in shared:
        bucket.take(0.0)
        bucket.answered(0.0, remaining=2)
    assert sum(sent_at_once(bucket, 4) for bucket in shared) == 2


def test_an_answer_without_a_count_changes_only_what_is_in_flight() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    bucket.take(0.0)
    bucket.answered(0.0, remaining=None)
    assert (bucket.tokens, bucket.in_flight) == (3, 0)


def test_a_429_holds_every_call_until_arms_retry_after() -> None:
    bucket = budget().bucket("sub", "read", now=1.0)
    bucket.take(1.0)
    bucket.throttled(1.0, retry_after=3.0)
    assert bucket.wait_for_turn(0, 1.0) == pytest.approx(3.0)  # nothing before t = 1 + 3
    assert bucket.wait_for_turn(0, 5.0) == 0


def test_buckets_are_per_subscription_and_kind() -> None:
    spent = budget()
    sent_at_once(spent.bucket("SUB-A", "read", 0.0), 4)
    assert spent.bucket("sub-a", "read", 0.0).wait_for_turn(0, 0.0) == 0.5  # case-blind ids
    assert spent.bucket("sub-b", "read", 0.0).wait_for_turn(0, 0.0) == 0
    assert spent.bucket("sub-a", "write", 0.0).wait_for_turn(0, 0.0) == 0


class FakeClock:
    """The gate's clock, moved by the test (the event loop's sleeps still run)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_serves_the_oldest_requests_calls_first() -> None:
    """Calls queued for an empty bucket go out by their move's age, not their arrival."""

    async def scenario() -> list[float]:
        bucket = BucketEstimate(BucketLimits(burst=4, rate=200), tokens=0.0, updated=0.0)
        gate = BudgetGate(bucket, max_wait=10.0)
        bucket.updated = time.monotonic()
        served: list[float] = []

        async def call(priority: float) -> None:
            await gate.turn(priority)
            served.append(priority)

        await asyncio.gather(*(call(p) for p in (30.0, 10.0, 20.0, 10.0, 5.0)))
        return served

    assert asyncio.run(scenario()) == [5.0, 10.0, 10.0, 20.0, 30.0]


def test_a_call_whose_turn_is_too_far_off_is_not_queued() -> None:
    """It gets ArmBudgetExhausted, with its wait as Retry-After (a durable timer's job)."""

    async def queue_then_refuse() -> TransientError:
        clock = FakeClock()
        bucket = BucketEstimate(BucketLimits(burst=4, rate=1), tokens=0.0, updated=0.0)
        gate = BudgetGate(bucket, max_wait=2.5, clock=clock)
        first = asyncio.ensure_future(gate.turn(1.0))  # 1 s away
        second = asyncio.ensure_future(gate.turn(2.0))  # 2 s away
        await asyncio.sleep(0)
        try:
            await gate.turn(3.0)  # 3 s away: refused
        except TransientError as exc:
            first.cancel()
            second.cancel()
            return exc
        raise AssertionError("the third call should have been refused")

    error = asyncio.run(queue_then_refuse())
    assert error.code == "ArmBudgetExhausted"
    assert error.retry_after == pytest.approx(3.0)


def test_an_older_move_does_not_wait_behind_newer_ones_queued_before_it() -> None:
    """Its wait (and whether it is refused) counts only the calls before it in line."""

    async def scenario() -> list[bool]:
        clock = FakeClock()
        bucket = BucketEstimate(BucketLimits(burst=4, rate=1), tokens=0.0, updated=0.0)
        gate = BudgetGate(bucket, max_wait=2.5, clock=clock)
        newer = [asyncio.ensure_future(gate.turn(100.0 + i)) for i in range(2)]
        await asyncio.sleep(0.01)  # queued, the gate waiting for the next token
        older = asyncio.ensure_future(gate.turn(1.0))  # 1 s away, not 3: not refused
        clock.now = 1.0
        await asyncio.wait_for(older, timeout=5)
        still_waiting = [call.done() for call in newer]
        for call in newer:
            call.cancel()
        return still_waiting

    assert asyncio.run(scenario()) == [False, False]  # the token went to the older move


@pytest.mark.parametrize(
    ("method", "kind"),
    [("GET", "read"), ("head", "read"), ("PUT", "write"), ("POST", "write"), ("DELETE", "delete")],
)
def test_request_kind_follows_arms_buckets(method: str, kind: str) -> None:
    assert request_kind(method) == kind
