"""Entra ID access tokens: RS256 JWTs signed with a key kept in the state dir.

App-only tokens look like the v1 tokens Entra ID issues to managed identities
(``ver`` 1.0, ``appidacr`` 2, ``idtyp`` app, ``sub`` = ``oid``); delegated (user)
tokens like a v1 token an operator gets through the Azure CLI (``scp``,
``appidacr`` 0, ``upn``). ``xms_mirid`` is a first-party-only claim: by default only
tokens for ARM carry it. The issuer is the emulator's own https base plus the
tenant id, so OIDC discovery from ``iss`` works locally (docs/local-azure.md
explains why, and which claims are recorded, documented or guessed).

The published key set can be rotated and keys dropped (control API), as Entra ID
rolls its signing keys: validators must refetch the set.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "ARM_AUDIENCES",
    "AZURE_CLI_APP_ID",
    "IssuedToken",
    "Principal",
    "TokenError",
    "TokenIssuer",
    "UserPrincipal",
    "is_arm_audience",
]

ARM_AUDIENCES = frozenset(
    {
        "https://management.azure.com/",
        "https://management.azure.com",
        "https://management.core.windows.net/",
        "https://management.core.windows.net",
    }
)
# The Azure CLI's public client: the client of an operator's delegated token.
AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
_KEY_FILE = "token-signing-key.pem"
# Tenant creation time (xms_tcdt): fixed, as it is per tenant.
_TENANT_CREATED = 1600000000


def is_arm_audience(resource: str) -> bool:
    """True for the audiences ARM accepts."""
    return resource in ARM_AUDIENCES


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Principal:
    """Whose identity an app-only token carries (a managed identity)."""

    name: str
    object_id: str
    client_id: str
    resource_id: str


@dataclass(frozen=True)
class UserPrincipal:
    """A user (an operator) in a delegated token."""

    upn: str
    object_id: str
    given_name: str = "Ops"
    family_name: str = "Operator"

    @classmethod
    def named(cls, upn: str, object_id: str | None = None) -> UserPrincipal:
        """A user; the object id is derived from the UPN unless given."""
        return cls(upn, object_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{upn.lower()}")))


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and the times it carries (epoch seconds)."""

    access_token: str
    not_before: int
    expires_on: int
    lifetime: int


@dataclass(eq=False)
class TokenError(Exception):
    """Why ARM refuses a bearer token: its error code and message."""

    code: str
    message: str

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")


@dataclass(frozen=True)
class _SigningKey:
    """One RSA key pair with its key id (SHA-1 thumbprint style) and certificate."""

    key: rsa.RSAPrivateKey
    kid: str
    certificate: x509.Certificate
    private_pem: bytes

    @classmethod
    def of(cls, key: rsa.RSAPrivateKey) -> _SigningKey:
        public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(key, _b64url(hashlib.sha1(public_der).digest()), _self_signed(key), pem)

    @classmethod
    def generate(cls) -> _SigningKey:
        return cls.of(rsa.generate_private_key(public_exponent=65537, key_size=2048))


class TokenIssuer:
    """Signs tokens, publishes the JWKS and validates tokens presented to ARM.

    One key signs; the published set may hold more (rotation keeps the previous
    key published until it is dropped). ``reset_keys`` returns to the key of the
    state dir, the only one that survives a restart.
    """

    def __init__(self, directory: Path | None, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.issuer = f"https://sts.windows.net/{tenant_id}/"  # replaced once the port is known
        self._initial = _SigningKey.of(_load_or_create_key(directory))
        self._signing = self._initial
        self._published: dict[str, _SigningKey] = {self._initial.kid: self._initial}
        self._issuer_pattern = re.compile(
            r"^https://(127\.0\.0\.1|localhost):\d+/" + re.escape(tenant_id) + r"/$"
        )

    @property
    def kid(self) -> str:
        """Key id of the key that signs new tokens."""
        return self._signing.kid

    # -- keys -------------------------------------------------------------------------

    def keys(self) -> list[dict[str, Any]]:
        """The published keys: ``kid`` and whether it signs new tokens."""
        return [{"kid": kid, "signing": kid == self._signing.kid} for kid in self._published]

    def rotate(self, keep_previous: bool = True) -> str:
        """A new key signs from now on and is published; the previous one stays published
        unless ``keep_previous`` is false. Returns the new key id."""
        new = _SigningKey.generate()
        if not keep_previous:
            self._published.pop(self._signing.kid, None)
        self._published[new.kid] = new
        self._signing = new
        return new.kid

    def drop(self, kid: str) -> None:
        """Stop publishing key ``kid`` (tokens it signed stop validating once a validator
        refetches the set). KeyError if unknown, ValueError for the signing key."""
        if kid not in self._published:
            raise KeyError(kid)
        if kid == self._signing.kid:
            raise ValueError("the signing key cannot be dropped; rotate first")
        del self._published[kid]

    def reset_keys(self) -> None:
        """Back to the state dir's key alone."""
        self._signing = self._initial
        self._published = {self._initial.kid: self._initial}

    # -- issuing ----------------------------------------------------------------------

    def issue(
        self,
        principal: Principal,
        resource: str,
        lifetime: int,
        now: float,
        include_mirid: bool,
        overrides: dict[str, Any] | None = None,
        roles: list[str] | None = None,
    ) -> IssuedToken:
        """An app-only token for managed identity ``principal`` with audience ``resource``.

        ``roles`` are app roles assigned to the identity on the resource's app.
        """
        issued = int(now)
        # Entra ID back-dates nbf/iat by five minutes to absorb clock skew.
        not_before = issued - 300
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": not_before,
            "nbf": not_before,
            "exp": issued + lifetime,
            "aio": _b64url(secrets.token_bytes(24)),
            "appid": principal.client_id,
            "appidacr": "2",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": principal.object_id,
            "rh": "0." + _b64url(secrets.token_bytes(30)) + ".",
            "sub": principal.object_id,
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
            "xms_tcdt": _TENANT_CREATED,
        }
        if roles:
            claims["roles"] = list(roles)
        if include_mirid:
            claims["xms_mirid"] = principal.resource_id
        return self._sign(claims, overrides, not_before, issued + lifetime, lifetime)

    def issue_user(
        self,
        user: UserPrincipal,
        resource: str,
        now: float,
        scopes: str = "user_impersonation",
        roles: list[str] | None = None,
        client_app_id: str = AZURE_CLI_APP_ID,
        overrides: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """A delegated (v1) token of ``user`` through public client ``client_app_id``.

        ``scp`` holds ``scopes``; ``roles`` the app roles assigned to the user. No
        ``idtyp``: Entra ID emits it in app-only tokens only.
        """
        issued = int(now)
        not_before = issued - 300
        # Default lifetime of user tokens: a random value between 60 and 90 minutes.
        lifetime = 3600 + secrets.randbelow(1801)
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": not_before,
            "nbf": not_before,
            "exp": issued + lifetime,
            "acr": "1",
            "aio": _b64url(secrets.token_bytes(40)),
            "amr": ["pwd", "mfa"],
            "appid": client_app_id,
            "appidacr": "0",
            "family_name": user.family_name,
            "given_name": user.given_name,
            "ipaddr": "203.0.113.10",
            "name": f"{user.given_name} {user.family_name}",
            "oid": user.object_id,
            "rh": "0." + _b64url(secrets.token_bytes(30)) + ".",
            "scp": scopes,
            # Pairwise: unique per user and application, not the object id.
            "sub": _b64url(hashlib.sha256(f"{user.object_id}|{resource}".encode()).digest()),
            "tid": self.tenant_id,
            "unique_name": user.upn,
            "upn": user.upn,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
            "xms_tcdt": _TENANT_CREATED,
        }
        if roles:
            claims["roles"] = list(roles)
        return self._sign(claims, overrides, not_before, issued + lifetime, lifetime)

    def _sign(
        self,
        claims: dict[str, Any],
        overrides: dict[str, Any] | None,
        not_before: int,
        expires: int,
        lifetime: int,
    ) -> IssuedToken:
        if overrides:
            claims.update(overrides)
            claims = {k: v for k, v in claims.items() if v is not None}
        token = jwt.encode(
            claims,
            self._signing.private_pem,
            algorithm="RS256",
            headers={"typ": "JWT", "x5t": self.kid, "kid": self.kid},
        )
        return IssuedToken(token, not_before, int(claims.get("exp", expires)), lifetime)

    def forge(self, claims: dict[str, Any], mode: str) -> str:
        """A deliberately bad token for tests: ``alg-none``, ``bad-signature`` (the signing
        key's kid, another key's signature) or ``unknown-key`` (a kid nobody publishes)."""
        if mode == "alg-none":
            header = _b64url(b'{"typ":"JWT","alg":"none"}')
            payload = _b64url(jwt.utils.force_bytes(jwt.api_jws.json.dumps(claims)))
            return f"{header}.{payload}."
        if mode in ("bad-signature", "unknown-key"):
            other = _SigningKey.generate()
            kid = self.kid if mode == "bad-signature" else other.kid
            return jwt.encode(
                claims, other.private_pem, algorithm="RS256", headers={"kid": kid, "x5t": kid}
            )
        raise ValueError(f"unknown forge mode {mode!r}")

    def with_header(self, token: str, header: dict[str, Any]) -> str:
        """``token`` re-signed by the signing key with extra/overridden header fields
        (e.g. an odd ``kid``); a ``None`` value removes a field."""
        claims = jwt.decode(token, options={"verify_signature": False})
        fields = {"typ": "JWT", "x5t": self.kid, "kid": self.kid, **header}
        fields = {k: v for k, v in fields.items() if v is not None}
        return jwt.encode(claims, self._signing.private_pem, algorithm="RS256", headers=fields)

    # -- publishing -------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set: every published RSA key, with its self-signed certificate."""
        keys = []
        for signing_key in self._published.values():
            numbers = signing_key.key.public_key().public_numbers()
            cert_der = signing_key.certificate.public_bytes(serialization.Encoding.DER)
            keys.append(
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": signing_key.kid,
                    "x5t": signing_key.kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                    "x5c": [base64.b64encode(cert_der).decode("ascii")],
                    "issuer": self.issuer,
                }
            )
        return {"keys": keys}

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        """A v1-style ``.well-known/openid-configuration`` pointing at this emulator."""
        tenant = f"{base_url}/{self.tenant_id}"
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{tenant}/discovery/keys",
            "token_endpoint": f"{tenant}/oauth2/token",
            "authorization_endpoint": f"{tenant}/oauth2/authorize",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "response_types_supported": [
                "code",
                "id_token",
                "code id_token",
                "token id_token",
                "token",
            ],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "nbf",
                "oid",
                "tid",
                "appid",
                "ver",
            ],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
        }

    # -- validating -------------------------------------------------------------------

    def validate(self, token: str, audiences: frozenset[str], now: float) -> dict[str, Any]:
        """The claims of a valid token, else TokenError with ARM's code for the failure."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("InvalidAuthenticationToken", "The access token is invalid.") from None
        if header.get("alg") != "RS256":
            raise TokenError(
                "InvalidAuthenticationToken",
                "The access token is invalid: its signature algorithm is not supported.",
            )
        signing_key = self._published.get(str(header.get("kid")))
        if signing_key is None:
            raise TokenError(
                "InvalidAuthenticationToken", "The access token has an unknown signing key."
            )
        try:
            claims = jwt.decode(
                token,
                signing_key.key.public_key(),
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise TokenError(
                "InvalidAuthenticationToken", "The access token has an invalid signature."
            ) from None
        issuer = claims.get("iss")
        if issuer != self.issuer and not (
            isinstance(issuer, str) and self._issuer_pattern.match(issuer)
        ):
            raise TokenError(
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer '{issuer}'. It must match the tenant "
                f"'{self.issuer}' associated with this subscription. "
                "Please use the authority (URL) "
                f"'{self.issuer}' to get the token. Note, if the subscription is transferred to "
                "another tenant there is no impact to the services, but information about new "
                "tenant could take time to propagate (up to an hour). If you just transferred your "
                "subscription and see this error message, please try back later.",
            )
        audience = claims.get("aud")
        if audience not in audiences:
            allowed = ",".join(f"'{a}'" for a in sorted(audiences))
            raise TokenError(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{audience}'. "
                f"It should exactly match with one of the allowed audiences {allowed}.",
            )
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires <= now:
            raise TokenError(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_arm_time(expires)}' is earlier than current "
                f"UTC time '{_arm_time(now)}'.",
            )
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and not_before > now + 300:
            raise TokenError(
                "InvalidAuthenticationToken",
                f"The access token is not valid before '{_arm_time(not_before)}'.",
            )
        return claims


def _arm_time(value: Any) -> str:
    if not isinstance(value, int | float):
        return "(missing)"
    moment = dt.datetime.fromtimestamp(value, dt.UTC)
    hour = moment.hour % 12 or 12
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {moment:%p}"


def _load_or_create_key(directory: Path | None) -> rsa.RSAPrivateKey:
    path = directory / _KEY_FILE if directory else None
    if path is not None and path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if path is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    return key


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")]
    )
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(
            int(uuid.uuid5(uuid.NAMESPACE_OID, str(key.public_key().public_numbers().n)).int >> 64)
        )
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * 5))
        .sign(key, hashes.SHA256())
    )
