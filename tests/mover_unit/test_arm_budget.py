"""ARM's token buckets as the app estimates them (mover.arm_budget)."""

from __future__ import annotations

import pytest

from mover.arm_budget import ArmBudget, BucketLimits, request_kind

READS = BucketLimits(burst=4, rate=2)


def budget(share: float = 1.0) -> ArmBudget:
    return ArmBudget(share=share, limits={"read": READS, "write": READS, "delete": READS})


def test_a_fresh_bucket_sends_its_burst_at_once_then_one_call_per_refill() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    waits = [bucket.reserve(0.0) for _ in range(7)]
    assert waits == [0, 0, 0, 0, 0.5, 1.0, 1.5]


def test_calls_asked_later_wait_only_for_their_own_token() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    for _ in range(4):
        bucket.reserve(0.0)
    assert bucket.reserve(10.0) == 0  # refilled meanwhile (up to the burst)


def test_processes_start_from_their_share_of_the_burst_and_the_refill() -> None:
    bucket = budget(share=0.5).bucket("sub", "read", now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0, 0, 1.0]  # 2 tokens, 1 per second


def test_arms_count_rebases_the_estimate_less_the_calls_it_may_not_have_counted() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    for _ in range(3):
        assert bucket.reserve(0.0) == 0
        bucket.sent()
    bucket.reserve(0.0)  # a fourth call reserved, not yet sent
    bucket.answered(0.0, remaining=2)  # ARM counted one call; two are still in flight
    assert bucket.tokens == 2 - 2 - 1
    bucket.answered(0.0, remaining=0)  # another process spent the rest
    # 0 left, 1 in flight, 1 waiting: this call is the third in line, at 2 per second.
    assert bucket.reserve(0.0) == pytest.approx(1.5)


def test_arm_saying_more_is_left_raises_the_estimate_up_to_the_burst() -> None:
    bucket = budget(share=0.25).bucket("sub", "read", now=0.0)
    bucket.reserve(0.0)
    bucket.sent()
    bucket.answered(0.0, remaining=200)
    assert bucket.tokens == READS.burst


def test_an_answer_without_a_count_changes_only_what_is_in_flight() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    bucket.reserve(0.0)
    bucket.sent()
    bucket.answered(0.0, remaining=None)
    assert (bucket.tokens, bucket.in_flight, bucket.waiting) == (3, 0, 0)


def test_a_429_holds_every_call_until_arms_retry_after() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    bucket.reserve(1.0)
    bucket.sent()
    bucket.throttled(1.0, retry_after=3.0)
    assert bucket.reserve(1.0) == pytest.approx(3.0)  # nothing before t = 1 + 3
    assert bucket.reserve(5.0) == 0


def test_a_token_not_spent_is_given_back() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    for _ in range(5):
        bucket.reserve(0.0)
    bucket.give_back(0.0)
    assert bucket.reserve(0.0) == 0.5


def test_buckets_are_per_subscription_and_kind() -> None:
    spent = budget()
    for _ in range(4):
        spent.bucket("SUB-A", "read", 0.0).reserve(0.0)
    assert spent.bucket("sub-a", "read", 0.0).reserve(0.0) == 0.5  # ids compare case-blind
    assert spent.bucket("sub-b", "read", 0.0).reserve(0.0) == 0
    assert spent.bucket("sub-a", "write", 0.0).reserve(0.0) == 0


@pytest.mark.parametrize(
    ("method", "kind"),
    [("GET", "read"), ("head", "read"), ("PUT", "write"), ("POST", "write"), ("DELETE", "delete")],
)
def test_request_kind_follows_arms_buckets(method: str, kind: str) -> None:
    assert request_kind(method) == kind
