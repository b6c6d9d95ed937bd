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


def test_processes_start_from_their_share_of_the_burst() -> None:
    bucket = budget(share=0.5).bucket("sub", "read", now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0, 0, 0.5]


def test_arms_count_lowers_the_estimate_but_never_raises_it() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    bucket.observe_remaining(0, now=0.0)  # another process spent the bucket
    assert bucket.reserve(0.0) == 0.5
    fresh = budget().bucket("sub", "read", now=0.0)
    fresh.reserve(0.0)
    fresh.observe_remaining(200, now=0.0)  # ARM's bucket is bigger than ours: keep ours
    assert fresh.tokens == 3


def test_a_429_holds_every_call_until_arms_retry_after() -> None:
    bucket = budget().bucket("sub", "read", now=0.0)
    bucket.observe_throttled(3.0, now=1.0)
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
