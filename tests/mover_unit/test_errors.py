"""classify_arm_failure: which ARM failures are worth retrying, and what they carry."""

from __future__ import annotations

import pytest

from mover.errors import (
    ErrorInfo,
    MoverError,
    PermanentError,
    TransientError,
    classify_arm_failure,
)

T, P = TransientError, PermanentError


@pytest.mark.parametrize(
    ("status", "code", "kind", "expected_code"),
    [
        # No usable response at all: connection refused, reset, timed out.
        (None, None, T, "NoResponse"),
        (None, "ConnectionResetError", T, "ConnectionResetError"),
        # 409: busy is transient, any other conflict is permanent.
        (409, "AnotherOperationInProgress", T, "AnotherOperationInProgress"),
        (409, "Conflict", P, "Conflict"),
        (409, "InUseSubnetCannotBeDeleted", P, "InUseSubnetCannotBeDeleted"),
        (409, None, P, "HTTP409"),
        # 412: stale If-Match etag, re-read and retry.
        (412, "PreconditionFailed", T, "PreconditionFailed"),
        (412, None, T, "HTTP412"),
        # Throttling.
        (429, "SubscriptionRequestsThrottled", T, "SubscriptionRequestsThrottled"),
        (429, "TooManyRequests", T, "TooManyRequests"),
        (429, "RetryableError", T, "RetryableError"),
        (429, "ReferencedResourceNotProvisioned", T, "ReferencedResourceNotProvisioned"),
        (429, None, T, "HTTP429"),
        # Bad requests are permanent, except a NIC that changed under us.
        (400, "InvalidRequestFormat", P, "InvalidRequestFormat"),
        (400, "InvalidResourceReference", P, "InvalidResourceReference"),
        (400, None, P, "HTTP400"),
        (400, "PrivateIPAddressInUse", T, "PrivateIPAddressInUse"),
        (400, "PrivateIPAddressIsAllocated", T, "PrivateIPAddressIsAllocated"),
        (400, "OperationNotAllowed", T, "OperationNotAllowed"),
        # Rights and missing resources.
        (401, "InvalidAuthenticationToken", P, "InvalidAuthenticationToken"),
        (403, "AuthorizationFailed", P, "AuthorizationFailed"),
        (404, "ResourceNotFound", P, "ResourceNotFound"),
        (404, None, P, "HTTP404"),
        # Server side.
        (408, None, T, "HTTP408"),
        (500, "InternalServerError", T, "InternalServerError"),
        (500, None, T, "HTTP500"),
        (502, None, T, "HTTP502"),
        (503, "ServiceUnavailable", T, "ServiceUnavailable"),
        (504, "GatewayTimeout", T, "GatewayTimeout"),
        (501, None, P, "HTTP501"),
        # A transient code wins over a status that would be permanent.
        (404, "AnotherOperationInProgress", T, "AnotherOperationInProgress"),
    ],
)
def test_arm_failure_is_classified_by_status_and_code(status, code, kind, expected_code):
    error = classify_arm_failure(status, code, "something went wrong")

    assert type(error) is kind
    assert error.code == expected_code
    assert error.status == status
    assert error.transient is (kind is TransientError)


def test_empty_code_falls_back_to_the_http_status():
    error = classify_arm_failure(403, "", "denied")

    assert error.code == "HTTP403"
    assert isinstance(error, PermanentError)


def test_throttling_keeps_the_servers_retry_after():
    error = classify_arm_failure(429, "SubscriptionRequestsThrottled", "slow down", retry_after=17)

    assert isinstance(error, TransientError)
    assert error.retry_after == 17
    assert error.info().retry_after == 17


def test_no_response_keeps_retry_after_and_has_no_status():
    error = classify_arm_failure(None, None, "connection reset", retry_after=3.0)

    assert error.retry_after == 3.0
    assert error.status is None


def test_permanent_error_keeps_message_and_retry_after():
    error = classify_arm_failure(403, "AuthorizationFailed", "no rights", retry_after=5)

    assert error.message == "no rights"
    assert error.retry_after == 5
    assert str(error) == "AuthorizationFailed: no rights"


def test_both_kinds_are_mover_errors_but_not_each_other():
    assert issubclass(TransientError, MoverError)
    assert issubclass(PermanentError, MoverError)
    assert not issubclass(TransientError, PermanentError)
    assert not issubclass(PermanentError, TransientError)


def test_error_message_names_code_and_text():
    error = TransientError("AnotherOperationInProgress", "nic busy", status=409)

    assert str(error) == "AnotherOperationInProgress: nic busy"


@pytest.mark.parametrize(("cls", "transient"), [(TransientError, True), (PermanentError, False)])
def test_info_carries_the_kind_across_the_activity_boundary(cls, transient):
    error = cls("SomeCode", "text", retry_after=2.5, status=409)

    assert error.info() == ErrorInfo("SomeCode", "text", transient, 2.5, 409)


def test_error_info_round_trips_through_its_dict():
    info = ErrorInfo("PreconditionFailed", "stale etag", True, retry_after=None, status=412)

    data = info.to_dict()

    assert data == {
        "code": "PreconditionFailed",
        "message": "stale etag",
        "transient": True,
        "retry_after": None,
        "status": 412,
    }
    assert ErrorInfo.from_dict(data) == info
