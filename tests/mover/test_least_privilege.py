"""The custom role holds exactly the ARM actions the mover performs, no more, no less.

Runs the mover's scenarios on a stack of its own, collects the app identity's
requests from the local Azure's request log, maps each to its RBAC action with
infra/arm-request-to-action.json (plus the join actions a NIC PUT implies for
the resources the NIC references), and compares with infra/role-actions.json.
"""

from __future__ import annotations

import json
import re
from typing import Any

from emulator.launch import REPO_ROOT
from emulator.stack import LocalStack

from .conftest import IP, Mover

ROUTES = json.loads((REPO_ROOT / "infra" / "arm-request-to-action.json").read_text())["routes"]
ROLE = set(json.loads((REPO_ROOT / "infra" / "role-actions.json").read_text()))


def _any_config_has(key: str):
    return lambda nic: any(c["properties"].get(key) for c in nic["properties"]["ipConfigurations"])


# Which NIC references make ARM check a linked join action (see the map's linkedActions).
_LINKED_CHECKS = {
    "Microsoft.Network/virtualNetworks/subnets/join/action": lambda nic: True,
    "Microsoft.Network/publicIPAddresses/join/action": _any_config_has("publicIPAddress"),
    "Microsoft.Network/networkSecurityGroups/join/action": lambda nic: bool(
        nic["properties"].get("networkSecurityGroup")
    ),
    "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action": _any_config_has(
        "applicationSecurityGroups"
    ),
    "Microsoft.Network/loadBalancers/backendAddressPools/join/action": _any_config_has(
        "loadBalancerBackendAddressPools"
    ),
    "Microsoft.Network/loadBalancers/inboundNatRules/join/action": _any_config_has(
        "loadBalancerInboundNatRules"
    ),
    "Microsoft.Network/applicationGateways/backendAddressPools/join/action": _any_config_has(
        "applicationGatewayBackendAddressPools"
    ),
}


def _route(method: str, path: str) -> dict[str, Any]:
    for route in ROUTES:
        if route["method"] == method and re.fullmatch(route["pathPattern"], path, re.IGNORECASE):
            return route
    raise AssertionError(f"{method} {path} is in no route of infra/arm-request-to-action.json")


def test_the_role_grants_exactly_the_actions_the_mover_uses(own_stack: LocalStack) -> None:
    mover = Mover(own_stack)
    control = own_stack.control
    # Every path the mover's code can take to ARM:
    assert mover.move("acquire", "server01")["status"] == "succeeded"  # start: add
    assert mover.move("acquire", "server02")["status"] == "succeeded"  # takeover: remove, add
    assert mover.move("acquire", "server02")["status"] == "succeeded"  # already there: read
    assert mover.get(f"ips/{IP}", "server01").status_code == 200  # holders, read by the API
    # An update answered Updating is polled (the NIC read); one that fails has its
    # operation read for the reason: answer the release's update Updating and fail it
    # once (the operation refused: the NIC's state is the reason), so all paths are taken.
    control.update_settings(nic_update_mode="async")
    control.fail_next_lros(1, code="InternalServerError")
    control.fail_next(3, method="GET", path="/operations/", status=403, code="AuthorizationFailed")
    assert mover.move("release", "server02")["status"] == "succeeded"  # NIC-state fallback

    app = own_stack.ready.app_identity.principal_id
    used: set[str] = set()
    for request in control.requests(target="arm"):
        assert request.principal == app, f"an ARM call not made by the app: {request}"
        route = _route(request.method, request.path)
        used.add(route["action"])
        if request.method == "PUT":
            nic = control.nic(request.path.rstrip("/").rsplit("/", 1)[-1])
            for linked in route.get("linkedActions", []):
                check = _LINKED_CHECKS[linked["action"]]
                if check(nic):
                    used.add(linked["action"])
    assert used == ROLE, (
        f"missing from the role: {sorted(used - ROLE)}; granted but unused: {sorted(ROLE - used)}"
    )
