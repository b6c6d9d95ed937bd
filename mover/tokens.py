"""Validation of callers' bearer tokens: RS256 against the issuer's JWKS, and the claims.

The function validates every token itself (App Service authentication may sit
in front of it, but is not relied on).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import jwt

from .config import AuthSettings

__all__ = ["AuthenticationError", "Caller", "TokenValidator"]

# Accepted clock skew between the issuer and this app.
_LEEWAY_SECONDS = 120


class AuthenticationError(Exception):
    """The request carries no valid token; the message says why (never the token)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: the identity's object id and, if the token says, its VM."""

    principal_id: str
    vm_id: str | None
    app_id: str | None


class TokenValidator:
    """Checks signature (issuer's JWKS), audience, issuer, expiry and tenant."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        context = ssl.create_default_context(cafile=settings.ca_bundle)
        # Keys are cached; an unknown key id triggers one refetch (key rollover).
        self._jwks = jwt.PyJWKClient(
            settings.jwks_uri, cache_keys=True, lifespan=3600, timeout=10, ssl_context=context
        )

    def validate(self, authorization: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header.

        Raises AuthenticationError when the header is missing or malformed, or
        the token is forged, expired, or for another audience, issuer or tenant.
        """
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"malformed token: {exc}") from None
        if header.get("alg") != "RS256":
            raise AuthenticationError(f"token algorithm {header.get('alg')!r} is not RS256")
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthenticationError(f"cannot fetch the issuer's signing keys: {exc}") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"unknown signing key: {exc}") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
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
            raise AuthenticationError(f"invalid token: {exc}") from None
        if str(claims["tid"]).lower() != self._settings.tenant_id:
            raise AuthenticationError("token is from another tenant")
        return Caller(
            principal_id=str(claims["oid"]).lower(),
            vm_id=claims.get("xms_mirid"),
            app_id=claims.get("appid"),
        )


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header is not a bearer token")
    return token.strip()
