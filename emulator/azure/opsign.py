"""Signed ``Azure-AsyncOperation`` URLs: ``…?api-version=V&t=…&c=…&s=…&h=…``.

Azure's newer operation URLs carry these four query parameters (recorded in azure-cli's
``test_network_nic.yaml``, 2024): ``t`` a time in .NET ticks, ``c`` a certificate,
``s`` a signature and ``h`` a hash, all base64url. A client must poll the URL exactly
as given. What Azure checks, and how it refuses an altered URL, is not recorded; the
stand-in refuses a poll whose parameters are missing or differ (docs/local-azure.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["OperationSigner"]

_TICKS_AT_EPOCH = 621355968000000000  # .NET ticks (100 ns since 0001-01-01) at 1970-01-01
SIGNATURE_PARAMS = ("t", "c", "s", "h")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass
class OperationSigner:
    """Signs and checks operation URLs with a key that survives restarts (see server.py)."""

    key: bytes
    certificate: bytes  # DER; sent as ``c`` like Azure's signing certificate

    def params(self, operation_id: str, started: float) -> dict[str, str]:
        """The signature parameters of an operation, always the same for one operation."""
        ticks = str(_TICKS_AT_EPOCH + int(started * 10_000_000))
        cert = _b64url(self.certificate)
        digest = _b64url(hashlib.sha256(f"{operation_id}|{ticks}|{cert}".encode()).digest())
        mac = hmac.new(self.key, f"{operation_id}|{ticks}|{digest}".encode(), hashlib.sha256)
        return {"t": ticks, "c": cert, "s": _b64url(mac.digest()), "h": digest}

    def query(self, operation_id: str, started: float) -> str:
        """``&t=…&c=…&s=…&h=…`` to append after ``?api-version=…``."""
        return "&" + urlencode(self.params(operation_id, started))

    def valid(self, operation_id: str, started: float, query: dict[str, str]) -> bool:
        """True when ``query`` carries the operation's own signature parameters."""
        expected = self.params(operation_id, started)
        return all(hmac.compare_digest(query.get(k, ""), expected[k]) for k in SIGNATURE_PARAMS)
