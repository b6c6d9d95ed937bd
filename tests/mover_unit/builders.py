"""Sample configuration, callers and NICs shared by the mover's decision tests.

Two clusters: ``cluster1`` (server01, server02; 10.5.0.110 as ipconfig2) in the
top-level subscription, and ``cluster2`` (server11, server12; 10.6.0.50 as vip-db)
in its own subscription; plus one operator. Every builder returns fresh objects,
so a test may change what it gets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from mover.config import MoverConfig, parse_config
from mover.planning import IpConfigView, NicView
from mover.tokens import Caller

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUDIENCE = "api://ip-mover"
ISSUER = f"https://sts.windows.net/{TENANT}/"
SUB1 = "0a1b2c3d-4e5f-4a6b-8c7d-000000000001"
SUB2 = "0a1b2c3d-4e5f-4a6b-8c7d-000000000002"
OPERATOR = "0e8f6d4c-9999-4b2a-8c1d-7f6e5d4c3b2a"
STRANGER = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"

IP1 = "10.5.0.110"
IP1_CONFIG = "ipconfig2"
IP2 = "10.6.0.50"
IP2_CONFIG = "vip-db"
UNKNOWN_IP = "10.9.9.9"


def vm_id(subscription: str, group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{group}"
        f"/providers/Microsoft.Compute/virtualMachines/{name}"
    )


def nic_id(name: str, subscription: str = SUB1, group: str = "TestGroup1") -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{group}"
        f"/providers/Microsoft.Network/networkInterfaces/{name}"
    )


SUBNET1 = (
    f"/subscriptions/{SUB1}/resourceGroups/TestGroup1"
    "/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/default"
)


@dataclass(frozen=True)
class SampleMember:
    name: str
    cluster: str
    vm_id: str
    principal_id: str


MEMBERS = {
    m.name: m
    for m in (
        SampleMember(
            "server01",
            "cluster1",
            vm_id(SUB1, "TestGroup1", "server01"),
            "5f2b1c7e-0001-4a6b-9c3d-1e2f3a4b5c01",
        ),
        SampleMember(
            "server02",
            "cluster1",
            vm_id(SUB1, "TestGroup1", "server02"),
            "5f2b1c7e-0002-4a6b-9c3d-1e2f3a4b5c02",
        ),
        SampleMember(
            "server11",
            "cluster2",
            vm_id(SUB2, "TestGroup2", "server11"),
            "5f2b1c7e-0011-4a6b-9c3d-1e2f3a4b5c11",
        ),
        SampleMember(
            "server12",
            "cluster2",
            vm_id(SUB2, "TestGroup2", "server12"),
            "5f2b1c7e-0012-4a6b-9c3d-1e2f3a4b5c12",
        ),
    )
}


def member_dict(name: str) -> dict[str, str]:
    m = MEMBERS[name]
    return {"name": m.name, "vmResourceId": m.vm_id, "principalId": m.principal_id}


def config_dict() -> dict[str, Any]:
    """A valid configuration document (a fresh copy each call)."""
    return copy.deepcopy(
        {
            "subscriptionId": SUB1,
            "auth": {"tenantId": TENANT, "audience": AUDIENCE, "issuer": ISSUER},
            "clusters": [
                {
                    "name": "cluster1",
                    "resourceGroup": "TestGroup1",
                    "members": [member_dict("server01"), member_dict("server02")],
                    "ips": [{"address": IP1, "ipConfigName": IP1_CONFIG}],
                },
                {
                    "name": "cluster2",
                    "subscriptionId": SUB2,
                    "resourceGroup": "TestGroup2",
                    "members": [member_dict("server11"), member_dict("server12")],
                    "ips": [{"address": IP2, "ipConfigName": IP2_CONFIG}],
                },
            ],
        }
    )


def sample_config() -> MoverConfig:
    return parse_config(config_dict())


_UNSET: Any = object()
OPERATOR_ROLE = "IpMover.Operator"


def caller_for(name: str, vm: str | None = _UNSET, **kind: Any) -> Caller:
    """A member's caller as the token validator builds it from its VM's app-only token
    (VM id from the token by default; ``app_only``/``roles`` may be given)."""
    m = MEMBERS[name]
    return Caller(
        principal_id=m.principal_id,
        vm_id=m.vm_id if vm is _UNSET else vm,
        app_id=None,
        app_only=kind.get("app_only", True),
        roles=frozenset(kind.get("roles", ())),
    )


def operator_caller(app_only: bool = False, principal: str = OPERATOR) -> Caller:
    """An operator: a token carrying the operators' app role (a user's by default)."""
    return Caller(
        principal_id=principal,
        vm_id=None,
        app_id=None,
        app_only=app_only,
        roles=frozenset({OPERATOR_ROLE}),
    )


def stranger_caller() -> Caller:
    return Caller(principal_id=STRANGER, vm_id=None, app_id=None, app_only=True, roles=frozenset())


# -- NICs ---------------------------------------------------------------------


def ipc(
    name: str, address: str | None, primary: bool = False, subnet: str | None = SUBNET1
) -> IpConfigView:
    return IpConfigView(name=name, address=address, primary=primary, subnet_id=subnet)


def nic(name: str, vm: str | None, *extra: IpConfigView, primary_address: str = "") -> NicView:
    """A NIC with a primary ip-config (``ipconfig1``) and the given extra ones."""
    primary = ipc("ipconfig1", primary_address or _primary_address(name), primary=True)
    return NicView(
        id=nic_id(name),
        name=name,
        vm_id=vm,
        provisioning_state="Succeeded",
        ip_configs=(primary, *extra),
    )


def _primary_address(name: str) -> str:
    return f"10.5.0.{10 + sum(map(ord, name)) % 90}"


def vm_of(name: str) -> str:
    return MEMBERS[name].vm_id
