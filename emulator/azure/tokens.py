"""Managed-identity access tokens: RS256 JWTs signed with a key kept in the state dir.

Tokens look like Entra ID v1 tokens for managed identities (``ver`` 1.0, ``appidacr``
2, ``idtyp`` app). The issuer is the emulator's own https base plus the tenant id,
so OIDC discovery from ``iss`` works locally (docs/local-azure.md explains why).
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
    "IssuedToken",
    "Principal",
    "TokenError",
    "TokenIssuer",
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
_KEY_FILE = "token-signing-key.pem"


def is_arm_audience(resource: str) -> bool:
    """True for the audiences ARM accepts."""
    return resource in ARM_AUDIENCES


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Principal:
    """Whose identity a token carries."""

    name: str
    object_id: str
    client_id: str
    resource_id: str


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


class TokenIssuer:
    """Signs tokens, publishes the JWKS and validates tokens presented to ARM."""

    def __init__(self, directory: Path | None, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.issuer = f"https://sts.windows.net/{tenant_id}/"  # replaced once the port is known
        self._key = _load_or_create_key(directory)
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = _b64url(hashlib.sha1(public_der).digest())
        self._certificate = _self_signed(self._key)
        self._private_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._issuer_pattern = re.compile(
            r"^https://(127\.0\.0\.1|localhost):\d+/" + re.escape(tenant_id) + r"/$"
        )

    # -- issuing ----------------------------------------------------------------------

    def issue(
        self,
        principal: Principal,
        resource: str,
        lifetime: int,
        now: float,
        include_mirid: bool,
        overrides: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """A token for ``principal`` with audience ``resource``, valid ``lifetime`` s."""
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
            "xms_tcdt": 1600000000,
        }
        if include_mirid:
            claims["xms_mirid"] = principal.resource_id
        if overrides:
            claims.update(overrides)
            claims = {k: v for k, v in claims.items() if v is not None}
        token = jwt.encode(
            claims,
            self._private_pem,
            algorithm="RS256",
            headers={"typ": "JWT", "x5t": self.kid, "kid": self.kid},
        )
        return IssuedToken(token, not_before, int(claims.get("exp", issued + lifetime)), lifetime)

    def forge(self, claims: dict[str, Any], mode: str) -> str:
        """A deliberately bad token for tests: ``alg-none`` or ``bad-signature``."""
        if mode == "alg-none":
            header = _b64url(b'{"typ":"JWT","alg":"none"}')
            payload = _b64url(jwt.utils.force_bytes(jwt.api_jws.json.dumps(claims)))
            return f"{header}.{payload}."
        if mode == "bad-signature":
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return jwt.encode(
                claims, other, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid}
            )
        raise ValueError(f"unknown forge mode {mode!r}")

    # -- publishing -------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set (one RSA key, with its self-signed certificate)."""
        numbers = self._key.public_key().public_numbers()
        cert_der = self._certificate.public_bytes(serialization.Encoding.DER)
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                    "x5c": [base64.b64encode(cert_der).decode("ascii")],
                    "issuer": self.issuer,
                }
            ]
        }

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
        if header.get("kid") != self.kid:
            raise TokenError(
                "InvalidAuthenticationToken", "The access token has an unknown signing key."
            )
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
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
