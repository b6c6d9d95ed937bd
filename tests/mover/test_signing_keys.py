"""The issuer's signing keys through the local host: rotation, dropped keys, no refetch storm.

A stack of its own, with short key timings: the session stack's key cache must not
see the rotations.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests

from emulator.stack import AUDIENCE, LocalStack, start_stack

from .conftest import FAST_AZURE, FAST_LIMITS, FAST_POLLS

REFRESH, COOLDOWN = 4.0, 1.0


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with start_stack(
        tmp_path_factory.mktemp("keys"),
        azure_args=FAST_AZURE,
        limits=FAST_LIMITS,
        **FAST_POLLS,
        auth={"keyRefreshSeconds": REFRESH, "keyRefetchCooldownSeconds": COOLDOWN},
    ) as running:
        yield running


def status_with(stack: LocalStack, token: str) -> int:
    """404 when the token is accepted (the request id is unknown), 401 when it is not."""
    r = requests.get(
        f"{stack.api}/requests/{uuid.uuid4()}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return r.status_code


def vm_token(stack: LocalStack) -> str:
    return stack.control.token("server01", AUDIENCE)


def key_fetches(stack: LocalStack, since: int) -> int:
    return len(stack.control.requests(since, target="issuer", path_contains="/keys"))


@pytest.fixture
def stack(keyed_stack: LocalStack) -> LocalStack:
    """The state dir's key alone, known to the host's cache, and the cooldown passed."""
    keyed_stack.control.reset()
    time.sleep(COOLDOWN)
    assert status_with(keyed_stack, vm_token(keyed_stack)) == 404
    time.sleep(COOLDOWN)
    return keyed_stack


def test_a_rotated_key_is_fetched_on_first_sight(stack: LocalStack) -> None:
    since = stack.control.last_seq()
    new_kid = stack.control.rotate_key()
    token = vm_token(stack)

    assert jwt.get_unverified_header(token)["kid"] == new_kid
    assert status_with(stack, token) == 404
    assert key_fetches(stack, since) == 1


def test_a_dropped_key_stops_validating_after_the_next_refetch(stack: LocalStack) -> None:
    old_token = vm_token(stack)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    stack.control.rotate_key()
    stack.control.drop_key(old_kid)

    cached = status_with(stack, old_token)  # the host still holds the old set
    refetched = status_with(stack, vm_token(stack))  # an unknown kid: refetch
    after = status_with(stack, old_token)

    assert (cached, refetched, after) == (404, 404, 401)


def test_a_dropped_key_stops_validating_at_the_periodic_refetch(stack: LocalStack) -> None:
    old_token = vm_token(stack)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    stack.control.rotate_key()
    stack.control.drop_key(old_kid)
    before = status_with(stack, old_token)
    since = stack.control.last_seq()

    time.sleep(REFRESH)

    assert before == 404
    assert status_with(stack, old_token) == 401
    assert key_fetches(stack, since) == 1


def test_unknown_key_ids_do_not_make_the_host_hammer_the_issuer(stack: LocalStack) -> None:
    since = stack.control.last_seq()
    started = time.monotonic()
    statuses = [
        status_with(stack, stack.control.token("server01", AUDIENCE, forge="unknown-key"))
        for _ in range(25)
    ]
    elapsed = time.monotonic() - started

    assert set(statuses) == {401}
    # One refetch for the first unknown kid, then at most one per cooldown.
    assert 1 <= key_fetches(stack, since) <= 1 + int(elapsed // COOLDOWN)


def test_a_refused_kid_names_the_reason(stack: LocalStack) -> None:
    token = stack.control.token("server01", AUDIENCE, forge="unknown-key")

    r = requests.get(
        f"{stack.api}/ips/10.5.0.110", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )

    assert r.status_code == 401
    assert "is not published by the issuer" in r.json()["error"]["message"]


def test_the_host_log_shows_the_refetches(stack: LocalStack) -> None:
    stack.control.rotate_key()
    assert status_with(stack, vm_token(stack)) == 404

    log = (stack.state_dir / "host.log").read_text(errors="replace")

    assert "fetched 2 signing keys from" in log
    assert "a token names an unknown key id" in log


def test_no_reachable_key_set_is_503_not_401(tmp_path: Path) -> None:
    # Nothing listens on port 1: the issuer's keys cannot be fetched at all.
    with start_stack(
        tmp_path,
        azure_args=FAST_AZURE,
        limits=FAST_LIMITS,
        auth={"jwksUri": "https://127.0.0.1:1/keys", "keyRefetchCooldownSeconds": 30},
    ) as running:
        r = requests.get(
            f"{running.api}/ips/10.5.0.110",
            headers={"Authorization": f"Bearer {vm_token(running)}"},
            timeout=10,
        )

    assert r.status_code == 503
    assert r.json()["error"]["code"] == "keys_unavailable"
    assert 1 <= int(r.headers["Retry-After"]) <= 30
