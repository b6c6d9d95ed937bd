"""Token validation: the caller from the claims, and the signing keys' cache and refetching."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from mover.config import AuthSettings
from mover.logtext import printable
from mover.tokens import (
    AuthenticationError,
    KeysUnavailableError,
    SigningKeys,
    TokenValidator,
    caller_of,
)

from .builders import AUDIENCE, ISSUER, MEMBERS, TENANT

REFRESH, COOLDOWN = 3600.0, 60.0
SERVER01 = MEMBERS["server01"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """Signing keys by kid and the JWKS it publishes; counts fetches."""

    def __init__(self) -> None:
        self.private: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.down = False

    def add_key(self, kid: str, publish: bool = True) -> str:
        self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        self.fetches += 1
        if self.down:
            raise OSError("connection refused")
        keys = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def token(self, kid: str, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "aud": AUDIENCE,
            "iss": ISSUER,
            "iat": now - 300,
            "nbf": now - 300,
            "exp": now + 3600,
            "appid": "1f0c8a3e-0000-4000-8000-000000000001",
            "appidacr": "2",
            "idtyp": "app",
            "oid": SERVER01.principal_id,
            "sub": SERVER01.principal_id,
            "tid": TENANT,
            "ver": "1.0",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.private[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer() -> Issuer:
    issuer = Issuer()
    issuer.add_key("key-a")
    return issuer


@pytest.fixture
def keys(issuer: Issuer, clock: Clock) -> SigningKeys:
    return SigningKeys(issuer.jwks, REFRESH, COOLDOWN, clock=clock)


@pytest.fixture
def validator(keys: SigningKeys) -> TokenValidator:
    settings = AuthSettings(TENANT, AUDIENCE, ISSUER, "https://issuer.invalid/keys")
    return TokenValidator(settings, keys)


def bearer(token: str) -> str:
    return f"Bearer {token}"


# -- the caller ---------------------------------------------------------------


def test_a_managed_identity_token_is_an_app_only_caller(issuer: Issuer, validator) -> None:
    caller = validator.validate(bearer(issuer.token("key-a")))

    assert caller.principal_id == SERVER01.principal_id
    assert caller.app_only is True
    assert caller.roles == frozenset()
    assert caller.vm_id is None  # no xms_mirid for an app registration's audience


@pytest.mark.parametrize(
    ("claims", "app_only"),
    [
        ({}, True),
        ({"idtyp": None}, True),  # idtyp is an optional claim: absent is app-only
        ({"idtyp": "user"}, False),
        ({"idtyp": "device"}, False),
        ({"scp": "user_impersonation"}, False),
        ({"scp": ""}, False),
        ({"scp": "user_impersonation", "idtyp": "app"}, False),
    ],
)
def test_the_kind_of_token(claims: dict, app_only: bool) -> None:
    base = {"oid": SERVER01.principal_id, "idtyp": "app"}
    base.update(claims)
    base = {k: v for k, v in base.items() if v is not None}

    assert caller_of(base).app_only is app_only


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["IpMover.Operator", "IpMover.Node"], {"IpMover.Operator", "IpMover.Node"}),
        ("IpMover.Operator", set()),  # not the array Entra ID issues
        ([1, "IpMover.Node"], {"IpMover.Node"}),
        (None, set()),
    ],
)
def test_roles_are_read_from_the_array(roles: Any, expected: set) -> None:
    claims = {"oid": SERVER01.principal_id} | ({"roles": roles} if roles is not None else {})

    assert caller_of(claims).roles == frozenset(expected)


def test_the_vm_claim_is_kept_when_present() -> None:
    caller = caller_of({"oid": SERVER01.principal_id.upper(), "xms_mirid": SERVER01.vm_id})

    assert caller.vm_id == SERVER01.vm_id
    assert caller.principal_id == SERVER01.principal_id


# -- signing keys -------------------------------------------------------------


def test_keys_are_fetched_once_and_reused(issuer: Issuer, validator) -> None:
    for _ in range(5):
        validator.validate(bearer(issuer.token("key-a")))

    assert issuer.fetches == 1


def test_the_key_set_is_refetched_when_it_is_due(issuer: Issuer, validator, clock) -> None:
    validator.validate(bearer(issuer.token("key-a")))
    clock.now += REFRESH - 1
    validator.validate(bearer(issuer.token("key-a")))
    before = issuer.fetches
    clock.now += 1
    validator.validate(bearer(issuer.token("key-a")))

    assert (before, issuer.fetches) == (1, 2)


def test_an_unknown_kid_refetches_and_finds_a_new_key(issuer: Issuer, validator, clock) -> None:
    validator.validate(bearer(issuer.token("key-a")))
    issuer.add_key("key-b")
    clock.now += COOLDOWN

    caller = validator.validate(bearer(issuer.token("key-b")))

    assert caller.principal_id == SERVER01.principal_id
    assert issuer.fetches == 2


def test_unknown_kids_refetch_at_most_once_per_cooldown(issuer: Issuer, validator, clock) -> None:
    validator.validate(bearer(issuer.token("key-a")))
    issuer.add_key("key-x", publish=False)

    for step in range(10):
        clock.now += COOLDOWN / 4
        with pytest.raises(AuthenticationError, match="not published by the issuer"):
            validator.validate(bearer(issuer.token("key-x", uti=str(step))))

    # 2.5 cooldowns after the first fetch: two refetches, not ten.
    assert issuer.fetches == 3


def test_a_key_dropped_from_the_set_stops_validating_after_the_next_refetch(
    issuer: Issuer, validator, clock
) -> None:
    old = issuer.token("key-a")
    validator.validate(bearer(old))
    issuer.add_key("key-b")
    issuer.published.remove("key-a")

    still = validator.validate(bearer(old))  # the cached set still has it
    clock.now += COOLDOWN
    validator.validate(bearer(issuer.token("key-b")))  # unknown kid: refetch

    assert still.principal_id == SERVER01.principal_id
    with pytest.raises(AuthenticationError, match="'key-a' is not published"):
        validator.validate(bearer(old))


def test_a_dropped_key_stops_validating_at_the_periodic_refetch(
    issuer: Issuer, validator, clock
) -> None:
    old = issuer.token("key-a")
    validator.validate(bearer(old))
    issuer.add_key("key-b")
    issuer.published.remove("key-a")
    clock.now += REFRESH

    with pytest.raises(AuthenticationError):
        validator.validate(bearer(old))


def test_the_cached_set_outlives_an_unreachable_issuer(issuer: Issuer, validator, clock) -> None:
    validator.validate(bearer(issuer.token("key-a")))
    issuer.down = True
    clock.now += REFRESH

    validator.validate(bearer(issuer.token("key-a")))
    validator.validate(bearer(issuer.token("key-a")))

    assert issuer.fetches == 2, "a failed refresh is retried after the cooldown, not at once"


def test_no_key_set_at_all_is_unavailable_not_unauthenticated(
    issuer: Issuer, validator, clock
) -> None:
    issuer.down = True

    with pytest.raises(KeysUnavailableError) as first:
        validator.validate(bearer(issuer.token("key-a")))
    clock.now += 10
    with pytest.raises(KeysUnavailableError) as second:
        validator.validate(bearer(issuer.token("key-a")))
    issuer.down = False
    clock.now += COOLDOWN
    validator.validate(bearer(issuer.token("key-a")))

    assert first.value.retry_after == COOLDOWN
    assert second.value.retry_after == COOLDOWN - 10
    assert issuer.fetches == 2


def _signed(header: dict[str, Any], claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    """A JWS with exactly this header (PyJWT refuses to encode some odd ones)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = jwt.algorithms.RSAAlgorithm(hashes.SHA256).sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "JWT", "alg": "RS256"},
        {"typ": "JWT", "alg": "RS256", "kid": ""},
        {"typ": "JWT", "alg": "RS256", "kid": 7},
        {"typ": "JWT", "alg": "HS256", "kid": "key-a"},
        {"typ": "JWT", "alg": "none", "kid": "key-a"},
    ],
)
def test_tokens_without_a_usable_header_are_refused(issuer: Issuer, validator, header) -> None:
    claims = jwt.decode(issuer.token("key-a"), options={"verify_signature": False})
    token = _signed(header, claims, issuer.private["key-a"])

    with pytest.raises(AuthenticationError):
        validator.validate(bearer(token))
    assert issuer.fetches == 0, "refused before any key is looked up"


@pytest.mark.parametrize("part", ["header", "payload"])
def test_a_deeply_nested_token_is_refused_not_crashed_on(validator, part: str) -> None:
    nested = ("[" * 100_000 + "]" * 100_000).encode()
    plain = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"key-a"}').rstrip(b"=")
    deep = base64.urlsafe_b64encode(nested).rstrip(b"=")
    segments = [deep, plain] if part == "header" else [plain, deep]

    with pytest.raises(AuthenticationError):
        validator.validate(bearer(b".".join([*segments, b"c2ln"]).decode()))


# -- caller-controlled text ---------------------------------------------------


def test_an_unknown_kid_never_reaches_a_message_unescaped(issuer: Issuer, validator) -> None:
    kid = 'evil"\nINFO forged log line\r\u2028'
    claims = jwt.decode(issuer.token("key-a"), options={"verify_signature": False})
    token = jwt.encode(claims, issuer.private["key-a"], algorithm="RS256", headers={"kid": kid})

    with pytest.raises(AuthenticationError) as caught:
        validator.validate(bearer(token))

    message = str(caught.value)
    assert "\n" not in message and "\r" not in message and "\u2028" not in message
    assert "\\nINFO forged log line" in message


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("line\u2028sep\u0085", "line\\u2028sep\\x85"),
        ("back\\slash", "back\\slash"),
        ("ünïcödé ok", "ünïcödé ok"),
        (None, "None"),
    ],
)
def test_printable_escapes_what_could_break_a_log_line(raw: Any, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_twice_is_printable_once() -> None:
    once = printable("a\nb\u2028c\\d")

    assert printable(once) == once == "a\\nb\\u2028c\\d"


def test_printable_bounds_the_length() -> None:
    text = printable("x" * 1000, limit=50)

    assert text == "x" * 50 + "...(truncated)"


def test_refetch_logs_escape_the_reason_and_kids(
    issuer: Issuer, clock, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.add_key("odd\nkid")
    keys = SigningKeys(issuer.jwks, REFRESH, COOLDOWN, clock=clock)

    with caplog.at_level(logging.INFO, logger="mover.tokens"):
        keys.key("key-a")

    assert caplog.records
    assert all("\n" not in r.getMessage() for r in caplog.records)
    assert "odd\\nkid" in caplog.text
