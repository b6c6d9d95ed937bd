"""Typed client for the local Azure: the ready line, and the ``/_control`` API.

Used by tests, the demo and benchmarks so nobody hand-rolls control URLs::

    ready = ReadyInfo.from_json(line)
    control = AzureControl.from_ready(ready)
    control.reset()
    control.fail_next(2, method="PUT", path="networkInterfaces", status=429,
                      code="RetryableError", retry_after=1)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import requests

from .requestlog import PrincipalCounters, RequestRecord
from .settings import Settings

__all__ = ["AppIdentityInfo", "AzureControl", "ControlError", "IpHolder", "ReadyInfo"]

T = TypeVar("T")


class ControlError(Exception):
    """The control API refused a call (bad fault spec, unknown NIC, ...)."""


@dataclass(frozen=True)
class AppIdentityInfo:
    """The Function app's managed identity endpoint (App Service style)."""

    endpoint: str
    header: str
    principal_id: str
    client_id: str
    resource_id: str


@dataclass(frozen=True)
class ReadyInfo:
    """The emulator's ready line."""

    arm: str
    ca_file: str
    control: str
    issuer: str
    jwks_uri: str
    openid_config: str
    tenant_id: str
    subscription_id: str
    resource_group: str
    location: str
    state_dir: str
    pid: int
    imds: dict[str, str]
    app_identity: AppIdentityInfo

    @classmethod
    def from_json(cls, line: str) -> ReadyInfo:
        """Parse the ready line (unknown extra fields are ignored)."""
        raw = json.loads(line)
        if not raw.get("ready"):
            raise ValueError(f"not a ready line: {line!r}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["app_identity"] = AppIdentityInfo(**raw["app_identity"])
        return cls(**values)

    def imds_env(self, vm: str) -> dict[str, str]:
        """Environment that points azure-identity / msal at ``vm``'s IMDS."""
        return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.imds[vm]}

    def app_identity_env(self) -> dict[str, str]:
        """Environment of the Function app: azure-identity then uses its identity endpoint."""
        return {
            "IDENTITY_ENDPOINT": self.app_identity.endpoint,
            "IDENTITY_HEADER": self.app_identity.header,
        }


@dataclass(frozen=True)
class IpHolder:
    """Which NIC (and VM) holds a private IP right now; ``resource``: the id of what holds
    it (an ip-configuration, or a resource outside the model set with ``hold_ip``)."""

    ip: str
    nic: str | None
    vm: str | None
    resource: str | None = None


class AzureControl:
    """Client of ``/_control`` (https, trusting the emulator's CA)."""

    def __init__(self, control_url: str, ca_file: str, timeout: float = 10.0) -> None:
        self.url = control_url.rstrip("/")
        self._session = requests.Session()
        self._session.verify = ca_file
        self._session.trust_env = False  # never route 127.0.0.1 through a proxy
        self._timeout = timeout

    @classmethod
    def from_ready(cls, ready: ReadyInfo) -> AzureControl:
        """A client for the emulator that printed ``ready``."""
        return cls(ready.control, ready.ca_file)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        response = self._session.request(
            method,
            f"{self.url}{path}",
            json=body,
            params=params,
            timeout=self._timeout,
        )
        if response.status_code >= 400:
            raise ControlError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    # -- general ----------------------------------------------------------------------

    def health(self) -> bool:
        """True when the emulator answers."""
        return bool(self._call("GET", "/health").get("ok"))

    def reset(
        self, *, state: bool = True, faults: bool = True, log: bool = True, settings: bool = True
    ) -> None:
        """Back to the start: topology's NICs, no faults, empty log and buckets, CLI settings."""
        self._call(
            "POST", "/reset", {"state": state, "faults": faults, "log": log, "settings": settings}
        )

    def topology(self) -> dict[str, Any]:
        """The topology in effect (topology file format)."""
        return self._call("GET", "/topology")

    def settings(self) -> Settings:
        """Current run-time settings."""
        return Settings(**self._call("GET", "/settings"))

    def update_settings(self, **changes: Any) -> Settings:
        """Change settings, e.g. ``nic_update_seconds=0.5, retry_after=1, write_burst=3``."""
        return Settings(**self._call("PATCH", "/settings", changes))

    # -- faults -----------------------------------------------------------------------

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Add a raw fault rule (fields: see docs/local-azure.md); returns it with its id."""
        return self._call("POST", "/faults", rule)

    def fail_next(
        self,
        count: int,
        *,
        method: str = "*",
        path: str = ".*",
        status: int = 500,
        code: str = "InternalServerError",
        message: str | None = None,
        retry_after: float | None = None,
    ) -> int:
        """The next ``count`` ARM requests matching method and path regex get an error."""
        return self.add_fault(
            target="arm",
            action="error",
            count=count,
            method=method,
            path=path,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
        )["id"]

    def delay_next(self, count: int, seconds: float, *, method: str = "*", path: str = ".*") -> int:
        """The next ``count`` matching ARM requests are answered ``seconds`` late."""
        return self.add_fault(
            target="arm", action="delay", count=count, method=method, path=path, delay=seconds
        )["id"]

    def drop_next(self, count: int, *, method: str = "*", path: str = ".*") -> int:
        """The next ``count`` matching ARM requests get their connection closed, no response."""
        return self.add_fault(target="arm", action="drop", count=count, method=method, path=path)[
            "id"
        ]

    def fail_next_lros(
        self,
        count: int,
        *,
        code: str = "InternalServerError",
        message: str | None = None,
        path: str = ".*",
    ) -> int:
        """The next ``count`` accepted NIC PUTs (path regex) end with status Failed + ``code``."""
        return self.add_fault(
            target="lro",
            action="fail",
            count=count,
            method="PUT",
            path=path,
            code=code,
            message=message,
        )["id"]

    def imds_fail_next(
        self,
        count: int,
        status: int,
        *,
        vm: str | None = None,
        path: str = "/metadata/identity/oauth2/token",
        code: str = "unknown_error",
        message: str | None = None,
        retry_after: float | None = None,
    ) -> int:
        """The next ``count`` IMDS requests (of ``vm``, default any) get ``status``."""
        return self.add_fault(
            target="imds",
            action="error",
            count=count,
            vm=vm,
            path=path,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
        )["id"]

    def imds_drop_next(self, count: int, *, vm: str | None = None, path: str = ".*") -> int:
        """The next ``count`` IMDS requests get their connection closed."""
        return self.add_fault(target="imds", action="drop", count=count, vm=vm, path=path)["id"]

    def imds_delay_next(
        self, count: int, seconds: float, *, vm: str | None = None, path: str = ".*"
    ) -> int:
        """The next ``count`` IMDS requests are answered ``seconds`` late."""
        return self.add_fault(
            target="imds", action="delay", count=count, vm=vm, path=path, delay=seconds
        )["id"]

    def identity_fail_next(self, count: int, status: int, *, code: str = "unknown_error") -> int:
        """The next ``count`` requests to the app identity endpoint get ``status``."""
        return self.add_fault(
            target="identity", action="error", count=count, status=status, code=code
        )["id"]

    def faults(self) -> list[dict[str, Any]]:
        """All rules with ``remaining`` and ``hits``."""
        return self._call("GET", "/faults")

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "/faults")

    # -- log and counters -------------------------------------------------------------

    def requests(
        self,
        since: int = 0,
        *,
        target: str | None = "arm",
        method: str | None = None,
        path_contains: str | None = None,
    ) -> list[RequestRecord]:
        """Logged requests after sequence number ``since``, filtered (case-insensitive path)."""
        raw = self._call("GET", "/requests", params={"since": since})["requests"]
        records = [RequestRecord(**r) for r in raw]
        return [
            r
            for r in records
            if (target is None or r.target == target)
            and (method is None or r.method == method.upper())
            and (path_contains is None or path_contains.lower() in r.path.lower())
        ]

    def last_seq(self) -> int:
        """Sequence number of the newest logged request (pass to ``requests(since=...)``)."""
        return int(self._call("GET", "/requests", params={"since": 1 << 62})["next"])

    def clear_requests(self) -> None:
        """Forget the request log and counters."""
        self._call("DELETE", "/requests")

    def counters(self) -> dict[str, PrincipalCounters]:
        """ARM reads, writes, throttled and failed requests per principal object id."""
        return {k: PrincipalCounters(**v) for k, v in self._call("GET", "/counters").items()}

    # -- state ------------------------------------------------------------------------

    def nics(self) -> list[dict[str, Any]]:
        """Every NIC, raw ARM JSON."""
        return self._call("GET", "/nics")

    def nic(self, name: str) -> dict[str, Any]:
        """One NIC, raw ARM JSON (operations that are due are finished first)."""
        return self._call("GET", f"/nics/{name}")

    def set_nic(self, name: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a NIC as given (no validation), Succeeded, with a fresh etag."""
        return self._call("PUT", f"/nics/{name}", resource)

    def ip_holder(self, ip: str) -> IpHolder:
        """Who holds ``ip`` now."""
        return IpHolder(**self._call("GET", f"/ips/{ip}"))

    def hold_ip(self, ip: str, resource_id: str) -> None:
        """Let a resource the emulator does not model (a load balancer frontend, a NIC in
        another resource group) hold ``ip``: NIC PUTs using it get PrivateIPAddressIsAllocated."""
        self._call("PUT", f"/ips/{ip}", {"holder": resource_id})

    def let_go_ip(self, ip: str) -> None:
        """Undo ``hold_ip``."""
        self._call("DELETE", f"/ips/{ip}")

    def operations(self) -> list[dict[str, Any]]:
        """All NIC operations (id, nic, status, started, done_at, fail_code...)."""
        return self._call("GET", "/operations")

    def set_identity(self, vm: str, enabled: bool, *, claims: dict[str, Any] | None = None) -> None:
        """Turn a VM's system-assigned identity on or off (off: IMDS 400 Identity not found);
        ``claims`` override what its IMDS tokens carry from now on (None removes a claim;
        ``{}`` undoes earlier overrides; ``reset`` clears them)."""
        body: dict[str, Any] = {"enabled": enabled}
        if claims is not None:
            body["claims"] = claims
        self._call("PUT", f"/identities/{vm}", body)

    def token(
        self,
        principal: str = "app",
        resource: str = "https://management.azure.com/",
        *,
        claims: dict[str, Any] | None = None,
        forge: str | None = None,
        roles: list[str] | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        """Mint an app-only token for ``principal`` ("app" or a VM name) as its managed
        identity gets it; ``roles``: app roles assigned to it on the resource's app;
        ``claims`` override (None removes a claim); ``header`` overrides JWT header fields
        (re-signed with the signing key); ``forge`` = "alg-none", "bad-signature" or
        "unknown-key" makes it invalid."""
        body = {
            "principal": principal,
            "resource": resource,
            "claims": claims,
            "forge": forge,
            "roles": roles,
            "header": header,
        }
        return str(self._call("POST", "/tokens", body)["access_token"])

    def user_token(
        self,
        resource: str,
        *,
        upn: str = "operator@contoso.example",
        oid: str | None = None,
        scopes: str = "user_impersonation",
        roles: list[str] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """Mint a delegated token of user ``upn`` (object id ``oid``, else derived from the
        UPN) as the Azure CLI gets it: ``scp`` = ``scopes``, ``roles`` = the app roles
        assigned to the user; ``claims`` override (None removes a claim)."""
        body = {
            "principal": "user",
            "resource": resource,
            "upn": upn,
            "oid": oid,
            "scopes": scopes,
            "roles": roles,
            "claims": claims,
        }
        return str(self._call("POST", "/tokens", body)["access_token"])

    def signing_keys(self) -> list[dict[str, Any]]:
        """The published signing keys: ``kid`` and ``signing`` (signs new tokens)."""
        return self._call("GET", "/keys")

    def rotate_key(self, keep_previous: bool = True) -> str:
        """A new key signs from now on (published at once); returns its ``kid``. The previous
        key stays published unless ``keep_previous`` is false."""
        return str(self._call("POST", "/keys/rotate", {"keep_previous": keep_previous})["kid"])

    def drop_key(self, kid: str) -> None:
        """Stop publishing key ``kid`` (not the signing key)."""
        self._call("DELETE", f"/keys/{kid}")

    # -- waiting ----------------------------------------------------------------------

    @staticmethod
    def wait_for(check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
        """Poll ``check`` until it returns something truthy; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)

    def wait_until_settled(self, nic: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until NIC ``nic`` is no longer Updating; returns it."""

        def settled() -> dict[str, Any] | None:
            resource = self.nic(nic)
            return (
                resource if resource["properties"].get("provisioningState") != "Updating" else None
            )

        return self.wait_for(settled, timeout)
