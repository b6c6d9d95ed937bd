"""retry_delay: exponential backoff within the deadline, honouring Retry-After."""

from __future__ import annotations

import pytest

from mover.errors import ErrorInfo
from mover.retry import retry_delay

NOW = 1_000.0
FAR = NOW + 3_600.0


def transient(code: str = "AnotherOperationInProgress", retry_after: float | None = None):
    return ErrorInfo(code, "try later", True, retry_after, 409)


def permanent(code: str = "AuthorizationFailed", retry_after: float | None = None):
    return ErrorInfo(code, "no", False, retry_after, 403)


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 15.0), (6, 15.0), (20, 15.0)],
)
def test_delay_doubles_from_one_second_and_is_capped_at_fifteen(attempt, delay):
    assert retry_delay(attempt, transient(), NOW, FAR) == delay


@pytest.mark.parametrize(("attempt", "retry_after", "delay"), [(1, 10.0, 10.0), (5, 30.0, 30.0)])
def test_retry_after_longer_than_the_backoff_wins(attempt, retry_after, delay):
    error = transient("SubscriptionRequestsThrottled", retry_after)

    assert retry_delay(attempt, error, NOW, FAR) == delay


@pytest.mark.parametrize("retry_after", [0.0, 0.5, 3.9])
def test_retry_after_shorter_than_the_backoff_does_not_shorten_it(retry_after):
    assert retry_delay(3, transient(retry_after=retry_after), NOW, FAR) == 4.0


@pytest.mark.parametrize(
    "code", ["PreconditionFailed", "PrivateIPAddressInUse", "PrivateIPAddressIsAllocated"]
)
def test_stale_reads_are_retried_at_once_the_first_two_times(code):
    error = transient(code)

    assert retry_delay(1, error, NOW, FAR) == 0.0
    assert retry_delay(2, error, NOW, FAR) == 0.0
    assert retry_delay(3, error, NOW, FAR) == 4.0
    assert retry_delay(6, error, NOW, FAR) == 15.0


def test_immediate_reread_still_honours_retry_after():
    assert retry_delay(1, transient("PreconditionFailed", retry_after=2.0), NOW, FAR) == 2.0


@pytest.mark.parametrize("attempt", [1, 2, 5])
def test_permanent_errors_are_never_retried(attempt):
    assert retry_delay(attempt, permanent(retry_after=1.0), NOW, FAR) is None


def test_permanent_reread_code_is_not_retried_either():
    assert retry_delay(1, permanent("PreconditionFailed"), NOW, FAR) is None


def test_retry_that_starts_before_the_deadline_is_allowed():
    assert retry_delay(3, transient(), NOW, NOW + 4.001) == 4.0


@pytest.mark.parametrize("deadline", [NOW + 4.0, NOW + 3.999, NOW, NOW - 10.0])
def test_retry_that_could_not_start_before_the_deadline_is_given_up(deadline):
    assert retry_delay(3, transient(), NOW, deadline) is None


def test_retry_after_beyond_the_deadline_means_give_up():
    error = transient("SubscriptionRequestsThrottled", retry_after=60.0)

    assert retry_delay(1, error, NOW, NOW + 30.0) is None


def test_immediate_reread_is_given_up_at_the_deadline():
    assert retry_delay(1, transient("PreconditionFailed"), NOW, NOW) is None
    assert retry_delay(1, transient("PreconditionFailed"), NOW, NOW + 0.001) == 0.0
