"""Who may do what: a member moves its cluster's IPs to itself; operators may do anything.

A member is recognised only from an app-only token of its VM's managed identity
(its ``oid``); an operator only from the app role ``auth.operatorRole`` in the
token's ``roles``, whatever its object id.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Cluster, IpSpec, Member, MoverConfig
from .tokens import Caller

__all__ = [
    "NOT_CONFIGURED",
    "ApiError",
    "MoveGrant",
    "authorize_dry_run",
    "authorize_move",
    "authorize_read_ip",
    "is_operator",
]

# What anyone may learn of an invalid configuration: that it is invalid, not its
# clusters, resource groups or ids. The problems go to the log and to operators.
NOT_CONFIGURED = (
    "the app's configuration is invalid; nothing is moved until it is fixed "
    "(an operator's token shows why, and so does the app's log)"
)


class ApiError(Exception):
    """A request the API refuses: HTTP status, stable code, human message (and headers)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class MoveGrant:
    """A permitted move: which cluster and IP, and whose NIC receives or gives it up."""

    cluster: Cluster
    ip: IpSpec
    target: Member
    by_operator: bool


def is_operator(config: MoverConfig, caller: Caller) -> bool:
    """Whether the caller's token carries the operators' app role (an object id never suffices)."""
    return config.auth.operator_role in caller.roles


def authorize_move(
    config: MoverConfig, caller: Caller, address: str, target_name: str | None
) -> MoveGrant:
    """Decide whether ``caller`` may acquire or release ``address``, and for which member.

    A member acts only on its own NIC and only for its own cluster's IPs; an
    operator must name the member to act for. Raises ApiError.
    """
    owner = config.cluster_of_ip(address)
    if owner is None:
        raise ApiError(404, "unknown_ip", f"{address} belongs to no configured cluster")
    cluster, spec = owner
    if is_operator(config, caller):
        if not target_name:
            raise ApiError(403, "forbidden", "operators must name the member to act for ('target')")
        target = cluster.member_by_name(target_name)
        if target is None:
            raise ApiError(
                403, "forbidden", f"{target_name} is not a member of cluster {cluster.name}"
            )
        return MoveGrant(cluster, spec, target, by_operator=True)
    member = _member_of(cluster, caller, address)
    if target_name and target_name.lower() != member.name.lower():
        raise ApiError(403, "forbidden", "a member can only move an IP to itself")
    return MoveGrant(cluster, spec, member, by_operator=False)


def authorize_read_ip(config: MoverConfig, caller: Caller, address: str) -> tuple[Cluster, IpSpec]:
    """Members of the owning cluster and operators may read an IP's state and history."""
    owner = config.cluster_of_ip(address)
    if owner is None:
        raise ApiError(404, "unknown_ip", f"{address} belongs to no configured cluster")
    if not is_operator(config, caller):
        _member_of(owner[0], caller, address)
    return owner


def authorize_dry_run(config: MoverConfig, caller: Caller, cluster_name: str) -> Cluster:
    """Only operators may dry-run a cluster: it shows every member's NICs and what a move
    to each would do. Raises ApiError (403 for anyone else, 404 for an unknown cluster)."""
    if not is_operator(config, caller):
        raise ApiError(
            403,
            "forbidden",
            f"a dry run is for operators (app role {config.auth.operator_role})",
        )
    cluster = next((c for c in config.clusters if c.name.lower() == cluster_name.lower()), None)
    if cluster is None:
        raise ApiError(404, "unknown_cluster", f"no configured cluster is named {cluster_name}")
    return cluster


def _member_of(cluster: Cluster, caller: Caller, address: str) -> Member:
    if not caller.app_only:
        # A user's (delegated) token never stands for a VM, whatever its object id.
        raise ApiError(
            403,
            "not_a_member",
            "only an app-only token of a member VM's managed identity identifies a member",
        )
    member = cluster.member_by_principal(caller.principal_id)
    if member is None:
        raise ApiError(
            403,
            "not_a_member",
            f"the caller is not a member of cluster {cluster.name}, which owns {address}",
        )
    # Tokens may also name the VM; it must be the member's (an identity moved
    # to another VM must not keep the old VM's rights).
    if caller.vm_id and caller.vm_id.lower() != member.vm_id.lower():
        raise ApiError(
            403, "not_a_member", "the token's VM is not the VM configured for this identity"
        )
    return member
