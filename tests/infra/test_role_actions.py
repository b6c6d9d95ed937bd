"""infra/role-actions.json is the one list of ARM actions; the template and the map agree."""

from __future__ import annotations

import re
from typing import Any

import pytest

ACTION = re.compile(r"^Microsoft\.[A-Za-z]+(/[A-Za-z]+)+/(read|write|delete|action)$")
METHODS = {"GET", "PUT", "PATCH", "POST", "DELETE"}

SUB = "/subscriptions/22222222-2222-2222-2222-222222222222"
RG = f"{SUB}/resourceGroups/TestGroup1"
NET = f"{RG}/providers/Microsoft.Network"

# Requests as the SDK sends them, and as the local Azure's request log may spell them.
SAMPLE_REQUESTS = [
    ("GET", f"{NET}/networkInterfaces", "list_nics_in_resource_group"),
    (
        "GET",
        f"{SUB}/resourcegroups/testgroup1/providers/microsoft.network/networkinterfaces/",
        "list_nics_in_resource_group",
    ),
    ("GET", f"{SUB}/providers/Microsoft.Network/networkInterfaces", "list_nics_in_subscription"),
    ("GET", f"{NET}/networkInterfaces/server01535", "get_nic"),
    ("PUT", f"{NET}/networkInterfaces/server02800", "put_nic"),
    (
        "PUT",
        f"{SUB}/resourcegroups/testgroup1/providers/microsoft.network/networkinterfaces/n1",
        "put_nic",
    ),
    (
        "GET",
        f"{SUB}/providers/Microsoft.Network/locations/westcentralus/operations/"
        "0f9c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "get_async_operation",
    ),
    (
        "GET",
        f"{SUB}/providers/Microsoft.Network/locations/westcentralus/operationResults/x",
        "get_operation_result",
    ),
    ("GET", f"{NET}/virtualNetworks/Vnet1", "get_virtual_network"),
    ("GET", f"{NET}/virtualNetworks/Vnet1/subnets/Vnet1-1", "get_subnet"),
    (
        "GET",
        f"{NET}/virtualNetworks/Vnet1/CheckIPAddressAvailability",
        "check_ip_address_availability",
    ),
    (
        "GET",
        f"{NET}/virtualNetworks/Vnet1/checkipaddressavailability",
        "check_ip_address_availability",
    ),
    ("GET", f"{NET}/networkInterfaces/n1/ipConfigurations/ipconfig2", "get_ip_configuration"),
    ("GET", f"{NET}/networkInterfaces/n1/ipConfigurations", "get_ip_configuration"),
    ("GET", f"{RG}/providers/Microsoft.Compute/virtualMachines/server01", "get_virtual_machine"),
    ("GET", RG, "get_resource_group"),
    ("GET", SUB, "get_subscription"),
]


def routes_for(action_map: dict[str, Any], method: str, path: str) -> list[str]:
    return [
        r["name"]
        for r in action_map["routes"]
        if r["method"] == method and re.fullmatch(r["pathPattern"], path, re.IGNORECASE)
    ]


def granted(route: dict[str, Any]) -> list[tuple[str, bool]]:
    """(action, inRole) of a route and of its linked actions."""
    own = [(route["action"], route["inRole"])]
    return own + [(link["action"], link["inRole"]) for link in route.get("linkedActions", [])]


# --- the list ---------------------------------------------------------------------------------


def test_role_actions_are_distinct_exact_action_names(role_actions) -> None:
    assert isinstance(role_actions, list) and role_actions
    assert len(set(role_actions)) == len(role_actions)
    for action in role_actions:
        assert ACTION.match(action), action  # no wildcards, no data actions


def test_role_holds_exactly_the_mover_actions(role_actions) -> None:
    # NIC read (GET, list in the resource group), NIC write (PUT with If-Match), joining the
    # subnet the new ip-configuration references and the NSG and public IP the NIC keeps
    # referencing, polling the PUT's Azure-AsyncOperation, and reading a member's VM to
    # learn its NICs. tests/mover/test_least_privilege.py checks this against what the
    # mover really does.
    assert sorted(role_actions) == [
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Network/locations/operations/read",
        "Microsoft.Network/networkInterfaces/read",
        "Microsoft.Network/networkInterfaces/write",
        "Microsoft.Network/networkSecurityGroups/join/action",
        "Microsoft.Network/publicIPAddresses/join/action",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
    ]


def test_template_embeds_the_same_list(template, role_actions) -> None:
    assert template["variables"]["roleActions"] == role_actions


# --- the request → action map -----------------------------------------------------------------


def test_every_route_is_complete(action_map) -> None:
    names = [r["name"] for r in action_map["routes"]]
    assert len(set(names)) == len(names)
    for route in action_map["routes"]:
        assert route["method"] in METHODS, route["name"]
        assert route["pathPattern"].startswith("^") and route["pathPattern"].endswith("$")
        re.compile(route["pathPattern"])
        assert route["comment"].strip(), route["name"]
        for action, in_role in granted(route):
            assert ACTION.match(action), action
            assert isinstance(in_role, bool)
        for link in route.get("linkedActions", []):
            assert link["when"].strip() and link["scope"].strip()


def test_in_role_flags_agree_with_the_role(action_map, role_actions) -> None:
    for route in action_map["routes"]:
        own_action, own_in_role = granted(route)[0]
        if route["name"] == "list_nics_in_subscription":
            # Granted action, wrong scope: the role is assigned per resource group.
            assert own_action in role_actions and not own_in_role
            continue
        for action, in_role in granted(route):
            assert in_role == (action in role_actions), (route["name"], action)


def test_every_action_of_the_role_is_justified_by_a_mover_request(action_map, role_actions) -> None:
    justified = {a for route in action_map["routes"] for a, ok in granted(route) if ok}
    assert justified == set(role_actions)


def test_a_nic_put_implies_joining_the_subnet(action_map) -> None:
    put = next(r for r in action_map["routes"] if r["name"] == "put_nic")
    always = [link for link in put["linkedActions"] if link["when"].startswith("always")]
    assert [link["action"] for link in always] == [
        "Microsoft.Network/virtualNetworks/subnets/join/action"
    ]


@pytest.mark.parametrize(("method", "path", "route"), SAMPLE_REQUESTS)
def test_each_request_matches_exactly_one_route(action_map, method, path, route) -> None:
    assert routes_for(action_map, method, path) == [route]


def test_unknown_requests_match_nothing(action_map) -> None:
    assert routes_for(action_map, "DELETE", f"{NET}/networkInterfaces/n1") == []
    assert routes_for(action_map, "GET", f"{NET}/networkSecurityGroups/nsg1") == []
    assert routes_for(action_map, "GET", f"{NET}/networkInterfaces/n1/extra/deep") == []
