"""The mover's configuration: clusters, their IPs and members, identity (operators' app role), ARM.

Read from the app setting ``MOVER_CONFIG`` (a JSON document) or the file named
by ``MOVER_CONFIG_FILE`` (local runs), and validated as a whole: every problem
is reported at once, with the path of the offending field.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ArmSettings",
    "AuthSettings",
    "Cluster",
    "ConfigError",
    "IpSpec",
    "Limits",
    "Member",
    "MoverConfig",
    "current_config",
    "load_config",
    "parse_config",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_VM_ID = re.compile(
    r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/Microsoft\.Compute/virtualMachines/[^/\s]+",
    re.IGNORECASE,
)
_NIC_ID = re.compile(
    r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/Microsoft\.Network/networkInterfaces/[^/\s]+",
    re.IGNORECASE,
)
_RESOURCE_GROUP_ID = re.compile(r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+", re.IGNORECASE)
_IPCONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
# An app role's value: no whitespace (Entra ID refuses spaces), printable ASCII.
_APP_ROLE = re.compile(r"[!-~]{1,120}")
# The signing keys are refetched at least this often ("every few hours"), at most.
_MAX_KEY_REFRESH_SECONDS = 6 * 3600.0


class ConfigError(ValueError):
    """The configuration is missing or invalid; ``problems`` lists every reason.

    ``auth`` is the token validation settings when that section alone is valid:
    the API can then still tell an operator (and only an operator) what is wrong.
    """

    def __init__(self, problems: list[str], auth: AuthSettings | None = None) -> None:
        super().__init__("invalid mover configuration: " + "; ".join(problems))
        self.problems = problems
        self.auth = auth


@dataclass(frozen=True)
class Member:
    """A cluster node: its VM, the object id of its managed identity, and optionally its NIC.

    ``nic_id`` names the NIC that carries the cluster's IPs; without it the mover
    learns the VM's NICs from the VM (its ``networkProfile``).
    """

    name: str
    vm_id: str
    principal_id: str
    nic_id: str | None = None


@dataclass(frozen=True)
class IpSpec:
    """A floating secondary IP and the name of the ip-configuration that carries it."""

    address: str
    ip_config_name: str


@dataclass(frozen=True)
class Cluster:
    """An HA cluster: the resource group of its NICs, its members and its IPs."""

    name: str
    subscription_id: str
    resource_group: str
    members: tuple[Member, ...]
    ips: tuple[IpSpec, ...]

    def member_by_principal(self, principal_id: str) -> Member | None:
        """The member whose identity has this object id."""
        return next((m for m in self.members if m.principal_id == principal_id.lower()), None)

    def member_by_name(self, name: str) -> Member | None:
        """The member with this name (case-insensitive)."""
        return next((m for m in self.members if m.name.lower() == name.lower()), None)

    def member_by_vm(self, vm_id: str) -> Member | None:
        """The member running on this VM (resource ids compare case-insensitively)."""
        return next((m for m in self.members if m.vm_id.lower() == vm_id.lower()), None)


@dataclass(frozen=True)
class AuthSettings:
    """How callers' tokens are validated, and which app role makes an operator."""

    tenant_id: str
    audience: str
    issuer: str
    jwks_uri: str
    ca_bundle: str | None = None
    # The app role of the mover's app registration that operators are assigned.
    operator_role: str = "IpMover.Operator"
    # The issuer's signing keys are refetched when this old...
    key_refresh_seconds: float = 3600.0
    # ... and for a token with an unknown key id, but not more often than this.
    key_refetch_cooldown_seconds: float = 60.0


@dataclass(frozen=True)
class ArmSettings:
    """Where ARM is and how its long-running operations are followed."""

    endpoint: str = "https://management.azure.com"
    ca_bundle: str | None = None
    # Poll NIC operations every half second instead of obeying Retry-After (10 s
    # on NIC updates): a move must not wait for a clock. See the README.
    lro_poll_seconds: float = 0.5
    # The first poll of an update ARM answered "Updating" comes this long after
    # the PUT's answer (a typical NIC update), not at once.
    first_poll_seconds: float = 1.0


@dataclass(frozen=True)
class Limits:
    """Time limits of requests and of the per-IP lock, and how long requests are kept."""

    default_deadline_seconds: float = 300.0
    max_deadline_seconds: float = 1800.0
    lock_lease_seconds: float = 120.0
    # Waiters are woken by the releaser; this timer is the fallback re-check.
    lock_poll_seconds: float = 2.0
    history_size: int = 500
    # Requests one caller may have holding or waiting for one IP's lock: a
    # flood from one member cannot push another member's request back further.
    max_pending_per_caller: int = 3
    # How long GET /v1/ips/{ip} reuses one ARM read of the cluster's NICs.
    ip_state_cache_seconds: float = 5.0
    # A finished request's orchestration instance is purged this long after it
    # was created; its record stays in the IP's history.
    retention_days: float = 30.0
    # An acquire that takes the IP from a member that acquired it less than this
    # long before is recorded as a suspected split brain (mover/split_brain.py).
    split_brain_window_seconds: float = 60.0


@dataclass(frozen=True)
class MoverConfig:
    """The whole configuration, validated."""

    auth: AuthSettings
    arm: ArmSettings
    limits: Limits
    clusters: tuple[Cluster, ...]

    def cluster_of_ip(self, address: str) -> tuple[Cluster, IpSpec] | None:
        """The cluster that owns this IP, with its spec."""
        for cluster in self.clusters:
            for spec in cluster.ips:
                if spec.address == address:
                    return cluster, spec
        return None

    def clusters_of_principal(self, principal_id: str) -> list[tuple[Cluster, Member]]:
        """Every cluster in which this identity is a member."""
        found = []
        for cluster in self.clusters:
            member = cluster.member_by_principal(principal_id)
            if member is not None:
                found.append((cluster, member))
        return found


def load_config(environ: Mapping[str, str] | None = None) -> MoverConfig:
    """Read and validate the configuration from ``MOVER_CONFIG`` or ``MOVER_CONFIG_FILE``.

    ``MOVER_ROLE_SCOPES`` (set by the template: a JSON array of the resource group ids
    the app's role is assigned on), when present, bounds where clusters may be.
    Raises ConfigError naming every problem.
    """
    env = os.environ if environ is None else environ
    scopes = _role_scopes(env.get("MOVER_ROLE_SCOPES"))
    text = env.get("MOVER_CONFIG")
    if not text and env.get("MOVER_CONFIG_FILE"):
        path = Path(env["MOVER_CONFIG_FILE"])
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError([f"MOVER_CONFIG_FILE {path}: {exc.strerror}"]) from None
    if not text:
        raise ConfigError(["neither MOVER_CONFIG nor MOVER_CONFIG_FILE is set"])
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"not valid JSON: {exc}"]) from None
    return parse_config(raw, scopes)


def _role_scopes(text: str | None) -> tuple[str, ...] | None:
    """The resource group ids of ``MOVER_ROLE_SCOPES``; None when the setting is absent."""
    if not text:
        return None
    try:
        scopes = json.loads(text)
    except json.JSONDecodeError:
        scopes = None
    if not isinstance(scopes, list) or not all(
        isinstance(s, str) and _RESOURCE_GROUP_ID.fullmatch(s) for s in scopes
    ):
        raise ConfigError(["MOVER_ROLE_SCOPES: must be a JSON array of resource group ids"])
    return tuple(s.lower() for s in scopes)


def parse_config(raw: Any, role_scopes: tuple[str, ...] | None = None) -> MoverConfig:
    """Validate a configuration document. Raises ConfigError naming every problem.

    ``role_scopes``: the resource group ids (lower case) the app's role is assigned
    on. A cluster whose resource group, VMs or NICs lie outside them is refused here,
    rather than failing its first failover with ARM's AuthorizationFailed.
    """
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(["the configuration must be a JSON object"])
    auth = _parse_auth(raw.get("auth"), problems)
    arm = _parse_arm(_section(raw, "arm", problems), problems)
    limits = _parse_limits(_section(raw, "limits", problems), problems)
    default_subscription = raw.get("subscriptionId")
    if "operators" in raw:
        # Object ids alone never make an operator: a token must carry the app role.
        problems.append(
            "operators: no longer supported; assign operators the app role named by "
            "auth.operatorRole (default IpMover.Operator) in the app registration"
        )
    clusters = []
    raw_clusters = raw.get("clusters")
    if not isinstance(raw_clusters, list) or not raw_clusters:
        problems.append("clusters: at least one cluster is required")
        raw_clusters = []
    for i, item in enumerate(raw_clusters):
        cluster = _parse_cluster(item, f"clusters[{i}]", default_subscription, problems)
        if cluster is not None:
            clusters.append(cluster)
    _check_unique(clusters, problems)
    if role_scopes is not None:
        _check_granted(clusters, role_scopes, problems)
    if problems or auth is None:
        raise ConfigError(problems, auth)
    return MoverConfig(
        auth=auth,
        arm=arm,
        limits=limits,
        clusters=tuple(clusters),
    )


def _parse_auth(raw: Any, problems: list[str]) -> AuthSettings | None:
    if not isinstance(raw, dict):
        problems.append("auth: required (tenantId, audience, issuer, jwksUri)")
        return None
    tenant = raw.get("tenantId")
    if not _is_guid(tenant):
        problems.append("auth.tenantId: must be a GUID")
    if not isinstance(raw.get("audience"), str) or not raw["audience"]:
        problems.append("auth.audience: required")
    if not raw.get("issuer"):
        problems.append("auth.issuer: required")
    issuer = raw.get("issuer") or ""
    if issuer and not _is_https(issuer):
        problems.append("auth.issuer: must be an https URL")
    jwks = raw.get("jwksUri") or (
        f"https://login.microsoftonline.com/{tenant}/discovery/keys" if _is_guid(tenant) else ""
    )
    if jwks and not _is_https(jwks):
        problems.append("auth.jwksUri: must be an https URL")
    role = raw.get("operatorRole", AuthSettings.operator_role)
    if not isinstance(role, str) or not _APP_ROLE.fullmatch(role):
        problems.append("auth.operatorRole: an app role value (no spaces, at most 120 characters)")
    refresh = _positive(
        raw, "keyRefreshSeconds", AuthSettings.key_refresh_seconds, "auth", problems
    )
    if refresh > _MAX_KEY_REFRESH_SECONDS:
        problems.append("auth.keyRefreshSeconds: at most 21600 (the keys roll over)")
    cooldown = _positive(
        raw,
        "keyRefetchCooldownSeconds",
        AuthSettings.key_refetch_cooldown_seconds,
        "auth",
        problems,
    )
    if cooldown > refresh:
        problems.append("auth.keyRefetchCooldownSeconds: must not exceed keyRefreshSeconds")
    if problems and any(p.startswith("auth") for p in problems):
        return None
    return AuthSettings(
        tenant_id=tenant.lower(),
        audience=raw["audience"],
        issuer=issuer,
        jwks_uri=jwks,
        ca_bundle=raw.get("caBundle"),
        operator_role=role,
        key_refresh_seconds=refresh,
        key_refetch_cooldown_seconds=cooldown,
    )


def _parse_arm(raw: dict[str, Any], problems: list[str]) -> ArmSettings:
    endpoint = raw.get("endpoint", ArmSettings.endpoint)
    if not _is_https(endpoint):
        # Bearer tokens are never sent over plain http.
        problems.append("arm.endpoint: must be an https URL")
        endpoint = ArmSettings.endpoint
    poll = _positive(raw, "lroPollSeconds", ArmSettings.lro_poll_seconds, "arm", problems)
    first = _positive(raw, "firstPollSeconds", ArmSettings.first_poll_seconds, "arm", problems)
    return ArmSettings(endpoint.rstrip("/"), raw.get("caBundle"), poll, first)


def _parse_limits(raw: dict[str, Any], problems: list[str]) -> Limits:
    d = Limits()
    limits = Limits(
        default_deadline_seconds=_positive(
            raw, "defaultDeadlineSeconds", d.default_deadline_seconds, "limits", problems
        ),
        max_deadline_seconds=_positive(
            raw, "maxDeadlineSeconds", d.max_deadline_seconds, "limits", problems
        ),
        lock_lease_seconds=_positive(
            raw, "lockLeaseSeconds", d.lock_lease_seconds, "limits", problems
        ),
        lock_poll_seconds=_positive(
            raw, "lockPollSeconds", d.lock_poll_seconds, "limits", problems
        ),
        history_size=_whole(raw, "historySize", d.history_size, "limits", problems),
        max_pending_per_caller=_whole(
            raw, "maxPendingPerCaller", d.max_pending_per_caller, "limits", problems
        ),
        ip_state_cache_seconds=_positive(
            raw, "ipStateCacheSeconds", d.ip_state_cache_seconds, "limits", problems
        ),
        retention_days=_positive(raw, "retentionDays", d.retention_days, "limits", problems),
        split_brain_window_seconds=_positive(
            raw, "splitBrainWindowSeconds", d.split_brain_window_seconds, "limits", problems
        ),
    )
    if limits.default_deadline_seconds > limits.max_deadline_seconds:
        problems.append("limits.defaultDeadlineSeconds: must not exceed maxDeadlineSeconds")
    if limits.retention_days * 86400 <= limits.max_deadline_seconds:
        # A request is purged only once its deadline has passed, so that a
        # retried POST can never find it gone and queue the move again.
        problems.append("limits.retentionDays: must be longer than maxDeadlineSeconds")
    return limits


def _parse_cluster(
    raw: Any, where: str, default_subscription: Any, problems: list[str]
) -> Cluster | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    before = len(problems)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"{where}.name: required, letters, digits, '.', '_', '-'")
    subscription = raw.get("subscriptionId", default_subscription)
    if not _is_guid(subscription):
        problems.append(f"{where}.subscriptionId: a GUID is required (here or at the top)")
    group = raw.get("resourceGroup")
    if not isinstance(group, str) or not group:
        problems.append(f"{where}.resourceGroup: required")
    members = []
    for j, m in enumerate(raw.get("members") or []):
        member = _parse_member(m, f"{where}.members[{j}]", problems)
        if member is not None:
            members.append(member)
    if len(raw.get("members") or []) < 1:
        problems.append(f"{where}.members: at least one member is required")
    ips = []
    for j, spec in enumerate(raw.get("ips") or []):
        ip = _parse_ip(spec, f"{where}.ips[{j}]", problems)
        if ip is not None:
            ips.append(ip)
    if len(raw.get("ips") or []) < 1:
        problems.append(f"{where}.ips: at least one IP is required")
    if len(problems) > before:
        return None
    return Cluster(name, subscription.lower(), group, tuple(members), tuple(ips))


def _parse_member(raw: Any, where: str, problems: list[str]) -> Member | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    ok = True
    if not isinstance(raw.get("name"), str) or not _NAME.fullmatch(raw["name"]):
        problems.append(f"{where}.name: required")
        ok = False
    vm_id = _vm_resource_id(raw, where, problems)
    if vm_id is None:
        ok = False
    if not _is_guid(raw.get("principalId")):
        problems.append(f"{where}.principalId: must be the VM identity's object id (GUID)")
        ok = False
    nic_id = raw.get("nicId")
    if nic_id is not None and (not isinstance(nic_id, str) or not _NIC_ID.fullmatch(nic_id)):
        problems.append(f"{where}.nicId: must be a network interface resource id")
        ok = False
    if not ok or vm_id is None:
        return None
    return Member(raw["name"], vm_id, raw["principalId"].lower(), nic_id)


def _vm_resource_id(raw: dict[str, Any], where: str, problems: list[str]) -> str | None:
    """The member's VM resource id, from ``vmResourceId`` or its old name ``vmId``.

    ``vmId`` was a misleading name: Azure's own ``vmId`` is the VM's GUID (IMDS
    ``compute.vmId``, ``az vm show --query vmId``), and people paste that. Both
    names are read; a GUID gets an error saying which value is wanted.
    """
    new, old = raw.get("vmResourceId"), raw.get("vmId")
    if new is not None and old is not None and new != old:
        problems.append(f"{where}: vmResourceId and vmId (its old name) differ; give one")
        return None
    field, value = ("vmId", old) if new is None and old is not None else ("vmResourceId", new)
    if isinstance(value, str) and _VM_ID.fullmatch(value):
        return value
    if _is_guid(value):
        problems.append(
            f"{where}.{field}: {value} is a VM's GUID (Azure's vmId), not its resource id; "
            "give the resource id, /subscriptions/<sub>/resourceGroups/<group>/providers/"
            "Microsoft.Compute/virtualMachines/<name> (az vm show --query id)"
        )
    else:
        problems.append(f"{where}.{field}: must be a virtual machine resource id")
    return None


def _parse_ip(raw: Any, where: str, problems: list[str]) -> IpSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    address = raw.get("address")
    try:
        parsed = ipaddress.IPv4Address(address)
    except (ipaddress.AddressValueError, ValueError, TypeError):
        problems.append(f"{where}.address: {address!r} is not an IPv4 address")
        return None
    if not parsed.is_private:
        problems.append(f"{where}.address: {address} is not a private address")
        return None
    name = raw.get("ipConfigName")
    if not isinstance(name, str) or not _IPCONFIG_NAME.fullmatch(name):
        problems.append(f"{where}.ipConfigName: required")
        return None
    return IpSpec(str(parsed), name)


def _check_unique(clusters: list[Cluster], problems: list[str]) -> None:
    seen_ips: dict[str, str] = {}
    seen_names: set[str] = set()
    for cluster in clusters:
        if cluster.name.lower() in seen_names:
            problems.append(f"cluster {cluster.name}: the name is used twice")
        seen_names.add(cluster.name.lower())
        for spec in cluster.ips:
            if spec.address in seen_ips:
                problems.append(
                    f"IP {spec.address} belongs to both {seen_ips[spec.address]} and {cluster.name}"
                )
            seen_ips[spec.address] = cluster.name
        config_names = [spec.ip_config_name.lower() for spec in cluster.ips]
        if len(set(config_names)) != len(config_names):
            # A NIC cannot carry two ip-configurations of one name.
            problems.append(f"cluster {cluster.name}: each IP needs its own ipConfigName")
        nics = [m.nic_id.lower() for m in cluster.members if m.nic_id]
        if len(set(nics)) != len(nics):
            # A NIC is attached to one VM at most.
            problems.append(f"cluster {cluster.name}: two members name the same nicId")
        names = [m.name.lower() for m in cluster.members]
        principals = [m.principal_id for m in cluster.members]
        if len(set(names)) != len(names) or len(set(principals)) != len(principals):
            problems.append(
                f"cluster {cluster.name}: member names and principal ids must be unique"
            )


def _check_granted(
    clusters: list[Cluster], role_scopes: tuple[str, ...], problems: list[str]
) -> None:
    """Every cluster's resource group, and its members' VMs and NICs, have the app's role.

    Refused rather than granted: the template assigns the role only in its own
    subscription (a role assignment elsewhere needs rights there that an app
    deployment should not need). A cluster elsewhere gets its own deployment.
    """
    for cluster in clusters:
        group = f"/subscriptions/{cluster.subscription_id}/resourceGroups/{cluster.resource_group}"
        ids = [group] + [m.vm_id for m in cluster.members]
        ids += [m.nic_id for m in cluster.members if m.nic_id]
        outside = sorted({_group_of(i) for i in ids} - set(role_scopes))
        if outside:
            problems.append(
                f"cluster {cluster.name}: the app's role is not assigned on "
                + ", ".join(outside)
                + " (template parameter clusterResourceGroups, this subscription only; "
                "a cluster in another subscription needs a deployment there)"
            )


def _group_of(resource_id: str) -> str:
    """The lower-case resource group id of a resource (or group) id."""
    parts = resource_id.strip("/").split("/")
    return "/" + "/".join(parts[:4]).lower()


def _section(raw: dict[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        problems.append(f"{key}: must be an object")
        return {}
    return value


def _positive(
    raw: dict[str, Any], key: str, default: float, where: str, problems: list[str]
) -> float:
    value = raw.get(key, default)
    # json.loads reads Infinity and NaN: neither is a usable time.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        problems.append(f"{where}.{key}: must be a positive number")
        return default
    return float(value)


def _whole(raw: dict[str, Any], key: str, default: int, where: str, problems: list[str]) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{where}.{key}: must be a whole number of at least 1")
        return default
    return value


def _is_https(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("https://")


def _is_guid(value: Any) -> bool:
    return isinstance(value, str) and bool(_GUID.fullmatch(value))


@functools.cache
def current_config() -> MoverConfig:
    """The process's configuration, loaded once. Raises ConfigError."""
    return load_config()
