"""Validation of callers' bearer tokens: RS256 against the issuer's JWKS, and the claims.

The function validates every token itself (App Service authentication may sit
in front of it, but is not relied on). What kind of token it is matters as much
as whose: a VM is only ever recognised from an app-only token of its managed
identity, an operator only from the app role in ``roles`` (mover/access.py).

The issuer's signing keys are cached and refetched when the set is older than
``key_refresh_seconds`` and when a token names an unknown key id (Entra ID rolls
its keys), but never twice within ``key_refetch_cooldown_seconds``: a stream of
tokens with made-up key ids cannot make the app hammer the key endpoint. A key
the issuer stops publishing stops validating at the next refetch.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from .config import AuthSettings
from .logtext import printable

__all__ = [
    "AuthenticationError",
    "Caller",
    "KeysUnavailableError",
    "SigningKeys",
    "TokenValidator",
    "caller_of",
]

log = logging.getLogger("mover.tokens")

# Accepted clock skew between the issuer and this app.
_LEEWAY_SECONDS = 120
# A cached key set is used while the issuer cannot be reached, but not past this age.
_MAX_STALE_SECONDS = 24 * 3600.0


class AuthenticationError(Exception):
    """The request carries no valid token; the message says why (never the token)."""


class KeysUnavailableError(Exception):
    """The issuer's signing keys cannot be fetched (not the caller's fault: retry later)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Caller:
    """Who is calling, and with which kind of token.

    ``app_only``: the token is an application's own (no ``scp``, ``idtyp`` "app" if
    present), as a managed identity's tokens are; a delegated (user) token is not.
    ``roles``: the app roles of the mover's registration the token carries.
    ``vm_id``: the VM the token names (``xms_mirid``), when it does.
    """

    principal_id: str
    vm_id: str | None
    app_id: str | None
    app_only: bool
    roles: frozenset[str]


def caller_of(claims: dict[str, Any]) -> Caller:
    """The caller described by a validated token's claims."""
    idtyp = claims.get("idtyp")
    app_only = "scp" not in claims and (idtyp is None or idtyp == "app")
    raw_roles = claims.get("roles")
    roles = (
        frozenset(r for r in raw_roles if isinstance(r, str))
        if isinstance(raw_roles, list)
        else frozenset()
    )
    mirid = claims.get("xms_mirid")
    appid = claims.get("appid")
    return Caller(
        principal_id=str(claims["oid"]).lower(),
        vm_id=mirid if isinstance(mirid, str) else None,
        app_id=appid if isinstance(appid, str) else None,
        app_only=app_only,
        roles=roles,
    )


class SigningKeys:
    """The issuer's published signing keys, by key id, refetched as the module says.

    ``fetch`` returns the JWKS document; ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        fetch: Callable[[], Any],
        refresh_seconds: float,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        source: str = "the issuer",
    ) -> None:
        self._fetch = fetch
        self._refresh = refresh_seconds
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._source = source
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK:
        """The published key ``kid``.

        Raises AuthenticationError for a key id the issuer does not publish, and
        KeysUnavailableError when no usable key set can be had.
        """
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self._refresh:
                self._try_refetch(now, "the cached set is due for a refresh")
            if self._keys is None:
                waited = now - (self._attempted_at if self._attempted_at is not None else now)
                raise KeysUnavailableError(
                    f"cannot fetch the signing keys of {self._source}",
                    retry_after=max(1.0, self._cooldown - waited),
                )
            found = self._keys.get(kid)
            if found is None and self._try_refetch(now, "a token names an unknown key id"):
                found = self._keys.get(kid)
            if found is None:
                raise AuthenticationError(
                    f"the token's signing key '{printable(kid, 64)}' is not published by the issuer"
                )
            return found

    def _try_refetch(self, now: float, reason: str) -> bool:
        """Fetch the set unless one was attempted within the cooldown; True if fetched."""
        if self._attempted_at is not None and now - self._attempted_at < self._cooldown:
            return False
        self._attempted_at = now
        try:
            keys = _parse_jwks(self._fetch())
        except Exception as exc:
            usable = self._keys is not None and now - self._fetched_at < _MAX_STALE_SECONDS
            if not usable:
                self._keys = None
            log.warning(
                "fetching the signing keys of %s failed (%s): %s; %s",
                self._source,
                reason,
                printable(exc),
                "keeping the cached set" if usable else "no usable key set",
            )
            return False
        self._keys = keys
        self._fetched_at = now
        log.info(
            "fetched %d signing keys from %s (%s): %s",
            len(keys),
            self._source,
            reason,
            ", ".join(printable(k, 64) for k in keys),
        )
        return True


def _parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """Signing keys (``use`` sig or absent, with a ``kid``) of a JWKS document."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type this app cannot use
    if not keys:
        raise ValueError("the key set holds no usable signing key")
    return keys


class TokenValidator:
    """Checks signature (issuer's JWKS), audience, issuer, expiry and tenant."""

    def __init__(self, settings: AuthSettings, keys: SigningKeys | None = None) -> None:
        self._settings = settings
        if keys is None:
            context = ssl.create_default_context(cafile=settings.ca_bundle)
            # PyJWKClient only as an HTTP client (no caching): SigningKeys caches.
            client = jwt.PyJWKClient(
                settings.jwks_uri, cache_jwk_set=False, timeout=10, ssl_context=context
            )
            keys = SigningKeys(
                client.fetch_data,
                settings.key_refresh_seconds,
                settings.key_refetch_cooldown_seconds,
                source=settings.jwks_uri,
            )
        self._keys = keys

    def validate(self, authorization: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header.

        Raises AuthenticationError when the header is missing or malformed, or
        the token is forged, expired, or for another audience, issuer or tenant;
        KeysUnavailableError when the issuer's keys cannot be fetched.
        """
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"malformed token: {printable(exc)}") from None
        if header.get("alg") != "RS256":
            alg = printable(header.get("alg"), 32)
            raise AuthenticationError(f"token algorithm '{alg}' is not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("the token names no signing key (kid)")
        key = self._keys.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "nbf", "iss", "aud", "oid", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("token is from another issuer") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {printable(exc)}") from None
        if str(claims["tid"]).lower() != self._settings.tenant_id:
            raise AuthenticationError("token is from another tenant")
        return caller_of(claims)


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header is not a bearer token")
    return token.strip()
