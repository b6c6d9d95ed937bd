"""infra/main.parameters.example.json: fits the template, holds no secret, has a valid config."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .arm_template import value_problems

PARAMETERS_SCHEMA = (
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#"
)

# What a leaked credential looks like in a parameters file.
SECRET_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"AccountKey=",
        r"SharedAccessSignature=|[?&]sig=",
        r"InstrumentationKey=",
        r"password|passwd|secret|client_?secret",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.",  # a JWT
        r"[A-Za-z0-9+/]{38,}={1,2}|[A-Za-z0-9+]{40,}",  # a storage key or other base64 blob
    )
]


def secrets_in(parameters: dict[str, Any], template: dict[str, Any]) -> list[str]:
    """Parameter names whose value looks like a secret, or that the template declares secure."""
    found = []
    for name, entry in parameters["parameters"].items():
        definition = template["parameters"].get(name, {})
        if definition.get("type", "").lower() in ("securestring", "secureobject"):
            if "reference" not in entry:  # a Key Vault reference is the one allowed form
                found.append(name)
            continue
        text = json.dumps(entry.get("value"))
        if any(p.search(text) for p in SECRET_PATTERNS):
            found.append(name)
    return found


def problems_with(parameters: dict[str, Any], template: dict[str, Any]) -> list[str]:
    """Unknown names, missing required parameters, values the definitions refuse."""
    declared = template["parameters"]
    given = parameters["parameters"]
    problems = [f"{name}: not a template parameter" for name in given if name not in declared]
    problems += [
        f"{name}: required, not given"
        for name, definition in declared.items()
        if "defaultValue" not in definition and name not in given
    ]
    for name, entry in given.items():
        if name in declared and "value" in entry:
            problems += [f"{name}: {p}" for p in value_problems(declared[name], entry["value"])]
    return problems


def test_example_is_a_parameters_file(parameters_example) -> None:
    assert parameters_example["$schema"] == PARAMETERS_SCHEMA
    assert parameters_example["contentVersion"] == "1.0.0.0"
    for entry in parameters_example["parameters"].values():
        assert set(entry) == {"value"}


def test_example_names_only_template_parameters_and_every_required_one(
    parameters_example, template
) -> None:
    assert problems_with(parameters_example, template) == []


def test_example_holds_no_secret(parameters_example, template) -> None:
    assert secrets_in(parameters_example, template) == []


def test_example_configuration_names_the_resource_groups_the_role_is_assigned_on(
    parameters_example,
) -> None:
    values = {k: v["value"] for k, v in parameters_example["parameters"].items()}
    config = json.loads(values["moverConfig"])
    groups = {c["resourceGroup"].lower() for c in config["clusters"]}
    assert groups <= {g.lower() for g in values["clusterResourceGroups"]}
    assert config["auth"]["audience"] == values["appIdUri"]


def test_example_configuration_is_valid_for_the_mover(parameters_example) -> None:
    config = pytest.importorskip("mover.config")
    parsed = config.parse_config(
        json.loads(parameters_example["parameters"]["moverConfig"]["value"])
    )
    assert [c.name for c in parsed.clusters] == ["ha1"]
    assert parsed.auth.operator_role == "IpMover.Operator"


# --- the checks themselves catch broken examples ----------------------------------------------


def broken(parameters_example: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(parameters_example))
    for name, value in changes.items():
        if value is None:
            del copy["parameters"][name]
        else:
            copy["parameters"][name] = {"value": value}
    return copy


def test_unknown_missing_and_ill_typed_parameters_are_reported(
    parameters_example, template
) -> None:
    bad = broken(
        parameters_example,
        storageAcountName="typo",
        moverConfig=None,
        maximumInstanceCount=10,
        pythonVersion="3.9",
        clusterResourceGroups="TestGroup1",
    )
    assert sorted(problems_with(bad, template)) == [
        "clusterResourceGroups: 'TestGroup1' is not of type array",
        "maximumInstanceCount: 10 is below minValue 40",
        "moverConfig: required, not given",
        "pythonVersion: '3.9' is not one of ['3.13']",
        "storageAcountName: not a template parameter",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc",
        "https://a.blob.core.windows.net/c?sv=2022-11-02&sig=abc",
        "my client secret is here",
        "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly94In0.c2lnbmF0dXJl",
        "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFy",
    ],
)
def test_secret_looking_values_are_reported(parameters_example, template, value) -> None:
    assert secrets_in(broken(parameters_example, moverConfig=value), template) == ["moverConfig"]


def test_a_value_for_a_secure_parameter_is_reported(parameters_example, template) -> None:
    secure_template = json.loads(json.dumps(template))
    secure_template["parameters"]["moverConfig"]["type"] = "securestring"
    assert secrets_in(parameters_example, secure_template) == ["moverConfig"]


# --- the private network the example asks for ------------------------------------------------

SUBNET_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network"
    r"/virtualNetworks/([^/]+)/subnets/[^/]+",
    re.IGNORECASE,
)
VNET_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+",
    re.IGNORECASE,
)


def network_problems(parameters: dict[str, Any], template: dict[str, Any]) -> list[str]:
    """What a private deployment needs that the template cannot require by itself."""
    given = {k: v["value"] for k, v in parameters["parameters"].items()}
    mode = given.get("networkAccess", template["parameters"]["networkAccess"]["defaultValue"])
    if mode != "Private":
        return []
    problems = []
    for name in ("privateEndpointSubnetId", "appIntegrationSubnetId"):
        if not SUBNET_ID.fullmatch(given.get(name) or ""):
            problems.append(f"{name}: a subnet resource id is required in Private mode")
    if given.get("privateEndpointSubnetId") == given.get("appIntegrationSubnetId"):
        problems.append("appIntegrationSubnetId: must be its own (delegated) subnet")
    if not given.get("privateDnsZonesResourceGroupId"):
        links = given.get("privateDnsVirtualNetworkIds") or []
        if not links or not all(VNET_ID.fullmatch(v) for v in links):
            problems.append("privateDnsVirtualNetworkIds: the VNets to link the zones to")
        outbound = SUBNET_ID.fullmatch(given.get("appIntegrationSubnetId") or "")
        if outbound and not any(v.lower().endswith("/" + outbound.group(1).lower()) for v in links):
            problems.append("privateDnsVirtualNetworkIds: must include the outbound subnet's VNet")
    return problems


def test_example_gives_what_the_private_network_needs(parameters_example, template) -> None:
    assert parameters_example["parameters"]["networkAccess"]["value"] == "Private"
    assert network_problems(parameters_example, template) == []


def test_a_private_deployment_without_its_subnets_is_reported(parameters_example, template) -> None:
    bad = broken(
        parameters_example,
        privateEndpointSubnetId=None,
        appIntegrationSubnetId="",
        privateDnsVirtualNetworkIds=[],
    )
    assert network_problems(bad, template) == [
        "privateEndpointSubnetId: a subnet resource id is required in Private mode",
        "appIntegrationSubnetId: a subnet resource id is required in Private mode",
        "privateDnsVirtualNetworkIds: the VNets to link the zones to",
    ]
    public = broken(bad, networkAccess="Public")
    assert network_problems(public, template) == []
