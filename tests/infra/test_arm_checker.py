"""The template checker itself: it parses real expressions and catches broken templates."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .arm_template import (
    Call,
    ExpressionError,
    Index,
    Member,
    Num,
    Str,
    check_depends_on,
    check_expressions,
    check_resources,
    check_shape,
    expression_of,
    parse_expression,
)

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"


def template(**sections: Any) -> dict[str, Any]:
    """A minimal valid template with a storage account, plus the given sections."""
    base: dict[str, Any] = {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {"name": {"type": "string"}},
        "variables": {"sku": "Standard_LRS"},
        "resources": [
            {
                "type": "Microsoft.Storage/storageAccounts",
                "apiVersion": "2024-01-01",
                "name": "[parameters('name')]",
                "sku": {"name": "[variables('sku')]"},
            }
        ],
    }
    base.update(sections)
    return base


def nested(scope: str | None, inner_template: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A nested deployment resource around ``inner_template``."""
    properties: dict[str, Any] = {"mode": "Incremental", "template": inner_template}
    if scope is not None:
        properties["expressionEvaluationOptions"] = {"scope": scope}
    properties.update(extra)
    return {
        "type": "Microsoft.Resources/deployments",
        "apiVersion": "2024-03-01",
        "name": "inner",
        "resourceGroup": "[parameters('name')]",
        "properties": properties,
    }


# --- the expression reader --------------------------------------------------------------------


def test_parses_calls_strings_numbers_members_and_indexes() -> None:
    tree = parse_expression(
        "reference(resourceId('Microsoft.Web/sites', parameters('app')), '2024-04-01', "
        "'Full').identity.principalId"
    )
    assert tree == Member(
        Member(
            Call(
                "reference",
                (
                    Call(
                        "resourceid",
                        (Str("Microsoft.Web/sites"), Call("parameters", (Str("app"),))),
                    ),
                    Str("2024-04-01"),
                    Str("Full"),
                ),
            ),
            "identity",
        ),
        "principalId",
    )
    assert parse_expression("parameters('groups')[copyIndex()]") == Index(
        Call("parameters", (Str("groups"),)), Call("copyindex")
    )
    assert parse_expression("add(-1, 2)") == Call("add", (Num(-1), Num(2)))


def test_doubled_quote_is_a_quote_inside_a_string() -> None:
    assert parse_expression("concat('it''s', ' ok')") == Call("concat", (Str("it's"), Str(" ok")))


def test_function_names_ignore_case_and_user_functions_keep_their_namespace() -> None:
    assert parse_expression("ResourceGroup().Location") == Member(Call("resourcegroup"), "Location")
    assert parse_expression("ns.fn('x')") == Call("ns.fn", (Str("x"),))


def test_only_bracketed_strings_are_expressions_and_double_bracket_escapes() -> None:
    assert expression_of("plain text") is None
    assert expression_of("[[not an expression]") is None
    assert expression_of("[variables('a')]") == Call("variables", (Str("a"),))


@pytest.mark.parametrize(
    "text",
    [
        "concat('a', ",
        "parameters('x'",
        "parameters 'x'",
        "'unterminated",
        "name",
        "concat('a') extra",
        "a.b.c()",
        "f(1,)",
        "#",
    ],
)
def test_malformed_expressions_are_errors(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text)


# --- shape, resources -------------------------------------------------------------------------


def test_a_minimal_template_passes_every_check() -> None:
    t = template()
    assert check_shape(t) == []
    assert check_expressions(t) == []
    assert check_resources(t) == []
    assert check_depends_on(t) == []


def test_shape_problems_are_reported() -> None:
    t = template()
    t["$schema"] = "https://example.com/whatever.json#"
    t["contentVersion"] = "1"
    t["resource"] = []
    t["parameters"]["n"] = {"type": "text"}
    t["parameters"]["size"] = {"type": "int", "defaultValue": "10"}
    t["parameters"]["tier"] = {"type": "string", "defaultValue": "Gold", "allowedValues": ["Free"]}
    t["outputs"] = {"id": {"value": "x"}}
    problems = check_shape(t)
    for part in ("$schema", "contentVersion", "$.resource", "parameters.n.type", "size", "tier"):
        assert any(part in p for p in problems), (part, problems)
    assert any("outputs.id" in p for p in problems)


def test_resources_need_type_and_dated_api_version() -> None:
    t = template()
    t["resources"].append({"type": "Microsoft.Web/sites", "name": "a"})
    t["resources"].append({"type": "sites", "apiVersion": "latest", "name": "b"})
    t["resources"].append({"type": "Microsoft.Web/sites", "apiVersion": "2024-04-01-preview"})
    problems = check_resources(t)
    assert problems == [
        "$.resources[1].apiVersion: None is not an explicit API version",
        "$.resources[2].type: 'sites' is not a resource type",
        "$.resources[2].apiVersion: 'latest' is not an explicit API version",
    ]


def test_resources_inside_nested_templates_are_checked_too() -> None:
    inner = template(resources=[{"type": "Microsoft.Authorization/roleAssignments", "name": "x"}])
    t = template()
    t["resources"].append(nested("inner", inner))
    assert check_resources(t) == [
        "$.resources[1].template.resources[0].apiVersion: None is not an explicit API version"
    ]


# --- expressions in scope ---------------------------------------------------------------------


def test_undeclared_parameters_and_variables_are_reported() -> None:
    t = template()
    t["resources"][0]["location"] = "[parameters('location')]"
    t["resources"][0]["kind"] = "[variables('kind')]"
    assert check_expressions(t) == [
        "$.resources[0].location: parameters('location') is not declared",
        "$.resources[0].kind: variables('kind') is not declared",
    ]


def test_names_ignore_case_and_variable_copy_loops_declare_variables() -> None:
    t = template()
    t["variables"]["copy"] = [{"name": "ids", "count": 2, "input": "[copyIndex('ids')]"}]
    t["resources"][0]["tags"] = {"a": "[PARAMETERS('NAME')]", "b": "[variables('IDS')]"}
    assert check_expressions(t) == []


def test_unknown_functions_and_syntax_errors_are_reported() -> None:
    t = template()
    t["resources"][0]["location"] = "[resourceGroupe().location]"
    t["resources"][0]["kind"] = "[concat('a', ]"
    t["resources"][0]["tags"] = {"k": "[listKeys(parameters('name'), '2024-01-01').keys]"}
    problems = check_expressions(t)
    assert problems[0] == "$.resources[0].location: resourcegroupe() is not a template function"
    assert problems[1].startswith("$.resources[0].kind: unexpected end of")
    assert len(problems) == 2


def test_dynamic_parameter_names_are_reported() -> None:
    t = template()
    t["resources"][0]["kind"] = "[parameters(variables('sku'))]"
    assert check_expressions(t) == ["$.resources[0].kind: parameters() takes one literal name"]


def test_inner_scope_nested_template_sees_only_its_own_declarations() -> None:
    inner = template(parameters={"principalId": {"type": "string"}}, variables={})
    inner["resources"] = [
        {
            "type": "Microsoft.Authorization/roleAssignments",
            "apiVersion": "2022-04-01",
            "name": "[guid(parameters('principalId'))]",
            "properties": {"principalId": "[parameters('name')]"},
        }
    ]
    outer = template()
    outer["resources"].append(
        nested("inner", inner, parameters={"principalId": {"value": "[parameters('name')]"}})
    )
    assert check_expressions(outer) == [
        "$.resources[1].properties.template.resources[0].properties.principalId: "
        "parameters('name') is not declared"
    ]


def test_values_passed_to_an_inner_template_are_evaluated_in_the_parent() -> None:
    inner = template(parameters={"principalId": {"type": "string"}}, variables={}, resources=[])
    outer = template()
    outer["resources"].append(
        nested("inner", inner, parameters={"principalId": {"value": "[parameters('principalId')]"}})
    )
    assert check_expressions(outer) == [
        "$.resources[1].properties.parameters.principalId.value: "
        "parameters('principalId') is not declared"
    ]


def test_outer_scope_nested_template_uses_the_parent_declarations() -> None:
    inner = {"$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": []}
    inner["resources"] = copy.deepcopy(template()["resources"])
    outer = template()
    outer["resources"].append(nested(None, inner))
    assert check_expressions(outer) == []

    inner["parameters"] = {"own": {"type": "string"}}
    inner["resources"][0]["kind"] = "[parameters('own')]"
    assert check_expressions(outer) == [
        "$.resources[1].properties.template.parameters: declared, but the scope is outer "
        "(use inner)",
        "$.resources[1].properties.template.resources[0].kind: parameters('own') is not declared",
    ]


def test_user_functions_see_only_their_own_parameters() -> None:
    t = template(
        functions=[
            {
                "namespace": "mover",
                "members": {
                    "tag": {
                        "parameters": [{"name": "value", "type": "string"}],
                        "output": {"type": "string", "value": "[concat(parameters('value'), '-')]"},
                    },
                    "bad": {"output": {"type": "string", "value": "[parameters('name')]"}},
                },
            }
        ]
    )
    t["resources"][0]["kind"] = "[mover.tag('x')]"
    t["resources"][0]["location"] = "[mover.missing('x')]"
    assert sorted(check_expressions(t)) == [
        "$.functions[0].bad.output.value: parameters('name') is not declared",
        "$.resources[0].location: user function mover.missing() is not declared",
    ]


# --- dependsOn --------------------------------------------------------------------------------


def with_dependent(*depends_on: str) -> dict[str, Any]:
    t = template()
    t["resources"].append(
        {
            "type": "Microsoft.Storage/storageAccounts/blobServices",
            "apiVersion": "2024-01-01",
            "name": "[format('{0}/{1}', parameters('name'), 'default')]",
        }
    )
    t["resources"].append(
        {
            "copy": {"name": "loop", "count": 2},
            "type": "Microsoft.Web/sites",
            "apiVersion": "2024-04-01",
            "name": "[format('app{0}', copyIndex())]",
            "dependsOn": list(depends_on),
        }
    )
    return t


def test_depends_on_resolves_resource_ids_names_and_copy_loops() -> None:
    t = with_dependent(
        "[resourceId('Microsoft.Storage/storageAccounts', parameters('name'))]",
        "[resourceId('microsoft.storage/storageAccounts/blobServices', parameters('name'), "
        "'DEFAULT')]",
        "[parameters('name')]",
        "loop",
    )
    assert check_depends_on(t) == []


@pytest.mark.parametrize(
    "entry",
    [
        "[resourceId('Microsoft.Storage/storageAccounts', parameters('other'))]",
        "[resourceId('Microsoft.Network/networkInterfaces', parameters('name'))]",
        "[resourceId('Microsoft.Storage/storageAccounts/blobServices', parameters('name'), 'x')]",
        "[parameters('other')]",
        "missing",
    ],
)
def test_depends_on_an_undefined_resource_is_reported(entry: str) -> None:
    assert check_depends_on(with_dependent(entry)) == [
        f"$.resources[2].dependsOn[0]: {entry} is not a resource of this template"
    ]


def test_depends_on_inside_a_nested_template_refers_to_its_own_resources() -> None:
    inner = template()
    inner["resources"].append(
        {
            "type": "Microsoft.Web/sites",
            "apiVersion": "2024-04-01",
            "name": "app",
            "dependsOn": ["[resourceId('Microsoft.Web/serverfarms', 'plan')]"],
        }
    )
    outer = template()
    outer["resources"].append(nested("inner", inner))
    assert check_depends_on(outer) == [
        "$.resources[1].template.resources[1].dependsOn[0]: "
        "[resourceId('Microsoft.Web/serverfarms', 'plan')] is not a resource of this template"
    ]
