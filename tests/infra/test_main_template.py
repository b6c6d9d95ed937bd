"""infra/main.json: a well-formed template that deploys what docs/deployment.md promises."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from emulator.host.schedules import parse_timer_schedule
from emulator.launch import REPO_ROOT
from maintenance.retention import DEFAULT_SCHEDULE

from .arm_template import (
    Call,
    Str,
    check_depends_on,
    check_expressions,
    check_resources,
    check_shape,
    expression_of,
    iter_resources,
    walk,
)

# The API version of each resource type, as researched (docs/deployment.md, "Sources"):
# Web and Storage as in Azure-Samples/azure-functions-flex-consumption-samples
# IaC/armtemplate; Authorization and Resources from Azure/azure-rest-api-specs stable folders.
API_VERSIONS = {
    "microsoft.operationalinsights/workspaces": "2025-02-01",
    "microsoft.insights/components": "2020-02-02",
    "microsoft.storage/storageaccounts": "2024-01-01",
    "microsoft.storage/storageaccounts/blobservices": "2024-01-01",
    "microsoft.storage/storageaccounts/blobservices/containers": "2024-01-01",
    "microsoft.web/serverfarms": "2024-04-01",
    "microsoft.web/sites": "2024-04-01",
    "microsoft.web/sites/config": "2024-04-01",
    "microsoft.web/sites/basicpublishingcredentialspolicies": "2024-04-01",
    "microsoft.authorization/roleassignments": "2022-04-01",
    "microsoft.authorization/roledefinitions": "2022-04-01",
    "microsoft.resources/deployments": "2024-03-01",
}

# Built-in role ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for _, r in iter_resources(template) if r.get("type", "").lower() == kind.lower()]


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


def only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = resources_of(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def app_settings(template: dict[str, Any]) -> dict[str, str]:
    site = only(template, "Microsoft.Web/sites")
    return {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}


def nested_deployment_containing(template: dict[str, Any], kind: str) -> dict[str, Any]:
    for deployment in resources_of(template, "Microsoft.Resources/deployments"):
        inner = deployment["properties"]["template"]
        if any(r["type"].lower() == kind.lower() for r in inner["resources"]):
            return deployment
    raise AssertionError(f"no nested deployment creates {kind}")


# --- well-formed ------------------------------------------------------------------------------


def test_template_is_strict_json_with_the_deployment_template_shape(template) -> None:
    assert check_shape(template) == []
    assert template["$schema"].endswith("/2019-04-01/deploymentTemplate.json#")


def test_every_expression_parses_and_names_declared_parameters_and_variables(template) -> None:
    assert check_expressions(template) == []


def test_every_resource_has_a_type_and_an_explicit_api_version(template) -> None:
    assert check_resources(template) == []


def test_api_versions_are_the_researched_ones(template) -> None:
    used = {(r["type"].lower(), r["apiVersion"]) for _, r in iter_resources(template)}
    assert used == set(API_VERSIONS.items())


def test_reference_calls_name_the_same_api_versions(template) -> None:
    checked = 0
    for text in strings_in(template):
        tree = expression_of(text)
        for node in walk(tree) if tree is not None else ():
            if isinstance(node, Call) and node.name == "reference" and len(node.args) > 1:
                target = node.args[0]
                assert isinstance(target, Call) and target.name == "resourceid", text
                kind = target.args[0].value.lower()
                assert node.args[1] == Str(API_VERSIONS[kind]), text
                checked += 1
    assert checked >= 5


def test_every_depends_on_names_a_resource_of_the_template(template) -> None:
    assert check_depends_on(template) == []


# --- hosting: Flex Consumption with always-ready instances ------------------------------------


def test_plan_is_flex_consumption_on_linux(template) -> None:
    plan = only(template, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    site = only(template, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"


def test_runtime_is_the_python_the_local_worker_runs(template) -> None:
    # From 3.13 on Azure runs the worker library pinned in requirements.txt, as the local host does.
    runtime = only(template, "Microsoft.Web/sites")["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "[parameters('pythonVersion')]"}
    assert template["parameters"]["pythonVersion"]["defaultValue"] == "3.13"
    assert template["parameters"]["pythonVersion"]["allowedValues"] == ["3.13"]
    worker_python = (REPO_ROOT / ".venv-worker" / "pyvenv.cfg").read_text()
    assert re.search(r"^version(_info)? = 3\.13\.", worker_python, re.MULTILINE)
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    assert re.search(r"^azure-functions-runtime==\d", requirements, re.MULTILINE)


def test_http_and_durable_groups_have_always_ready_instances_by_default(template) -> None:
    scale = only(template, "Microsoft.Web/sites")["properties"]["functionAppConfig"][
        "scaleAndConcurrency"
    ]
    groups = {g["name"]: g["instanceCount"] for g in scale["alwaysReady"]}
    assert groups == {
        "http": "[parameters('alwaysReadyHttpInstances')]",
        "durable": "[parameters('alwaysReadyDurableInstances')]",
    }
    for name in ("alwaysReadyHttpInstances", "alwaysReadyDurableInstances"):
        assert template["parameters"][name]["defaultValue"] >= 1
    # The plan refuses a maximum below 40.
    assert template["parameters"]["maximumInstanceCount"]["minValue"] == 40


def test_host_polls_the_task_hub_queues_at_least_every_ten_seconds() -> None:
    # Flex Consumption guidance for Durable Functions on Azure Storage: always-ready
    # "durable" group and a queue polling interval of 10 s or less.
    host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    interval = host["extensions"]["durableTask"]["storageProvider"]["maxQueuePollingInterval"]
    hours, minutes, seconds = (float(part) for part in interval.split(":"))
    assert hours * 3600 + minutes * 60 + seconds <= 10


# --- app settings and identity ----------------------------------------------------------------


def test_app_has_a_system_assigned_identity(template) -> None:
    assert only(template, "Microsoft.Web/sites")["identity"] == {"type": "SystemAssigned"}


def test_app_settings_use_identity_based_storage_and_carry_the_configuration(template) -> None:
    settings = app_settings(template)
    assert settings["AzureWebJobsStorage__accountName"] == "[parameters('storageAccountName')]"
    assert settings["MOVER_CONFIG"] == "[parameters('moverConfig')]"
    assert "ConnectionString" in settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    # No storage connection string (no key), and nothing Flex Consumption deprecates:
    # its runtime lives in functionAppConfig.runtime, not in FUNCTIONS_WORKER_RUNTIME.
    for name in (
        "AzureWebJobsStorage",
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTSHARE",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
    ):
        assert name not in settings


def test_the_retention_schedule_is_an_app_setting_with_a_valid_hourly_default(template) -> None:
    assert app_settings(template)["MOVER_RETENTION_SCHEDULE"] == "[parameters('retentionSchedule')]"
    default = template["parameters"]["retentionSchedule"]["defaultValue"]
    assert default == DEFAULT_SCHEDULE
    # As the Functions host reads it: NCRONTAB with seconds, at minute 0 of every hour.
    schedule = parse_timer_schedule(default, {})
    assert schedule.normalized() == "0 0 * * * *"


def test_storage_refuses_shared_keys_and_the_deployment_package_uses_the_identity(template) -> None:
    storage = only(template, "Microsoft.Storage/storageAccounts")["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    deployment = only(template, "Microsoft.Web/sites")["properties"]["functionAppConfig"][
        "deployment"
    ]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {"type": "SystemAssignedIdentity"}


def test_app_identity_gets_the_storage_data_roles_durable_functions_needs(template) -> None:
    roles = {r["id"] for r in template["variables"]["storageDataRoles"]}
    assert roles == {
        STORAGE_BLOB_DATA_OWNER,
        STORAGE_QUEUE_DATA_CONTRIBUTOR,
        STORAGE_TABLE_DATA_CONTRIBUTOR,
    }
    assignments = [
        r
        for r in resources_of(template, "Microsoft.Authorization/roleAssignments")
        if "storageAccounts" in r.get("scope", "")
    ]
    assert len(assignments) == 1
    loop = assignments[0]
    assert loop["copy"]["count"] == "[length(variables('storageDataRoles'))]"
    assert "identity.principalId" in loop["properties"]["principalId"]
    assert loop["properties"]["principalType"] == "ServicePrincipal"


def test_telemetry_uses_entra_authentication(template) -> None:
    insights = only(template, "Microsoft.Insights/components")["properties"]
    assert insights["DisableLocalAuth"] is True
    assert "Microsoft.OperationalInsights/workspaces" in insights["WorkspaceResourceId"]
    publishers = [
        r
        for r in resources_of(template, "Microsoft.Authorization/roleAssignments")
        if MONITORING_METRICS_PUBLISHER in r["properties"]["roleDefinitionId"]
        or "monitoringMetricsPublisherRoleId" in r["properties"]["roleDefinitionId"]
    ]
    assert len(publishers) == 1
    assert template["variables"]["monitoringMetricsPublisherRoleId"] == MONITORING_METRICS_PUBLISHER


# --- App Service authentication ---------------------------------------------------------------


def test_app_service_authentication_accepts_only_the_app_registration_audience(template) -> None:
    auth = only(template, "Microsoft.Web/sites/config")
    assert auth["name"].endswith("'authsettingsV2')]")
    assert auth["condition"] == "[parameters('enableAppServiceAuthentication')]"
    validation = auth["properties"]["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert validation["excludedPaths"] == ["[variables('healthPath')]"]
    assert template["variables"]["healthPath"] == "/api/v1/health"
    aad = auth["properties"]["identityProviders"]["azureActiveDirectory"]
    assert aad["registration"]["clientId"] == "[parameters('appRegistrationClientId')]"
    assert aad["validation"]["allowedAudiences"] == [
        "[parameters('appIdUri')]",
        "[parameters('appRegistrationClientId')]",
    ]
    assert "clientSecretSettingName" not in aad["registration"]  # validates tokens, no sign-in


def test_app_service_authentication_admits_only_the_tenants_tokens(template) -> None:
    # The built-in authorization policy's tenant requirement (checks the token's tid).
    site = only(template, "Microsoft.Web/sites")
    settings = {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
    assert settings["WEBSITE_AUTH_AAD_ALLOWED_TENANTS"] == "[parameters('tenantId')]"


# --- the custom role and its assignment on each cluster resource group ------------------------


def test_custom_role_is_created_at_subscription_scope_from_the_role_actions(template) -> None:
    deployment = nested_deployment_containing(template, "Microsoft.Authorization/roleDefinitions")
    assert deployment["subscriptionId"] == "[subscription().subscriptionId]"
    assert "resourceGroup" not in deployment
    assert deployment["properties"]["expressionEvaluationOptions"] == {"scope": "inner"}
    assert deployment["properties"]["parameters"]["actions"] == {
        "value": "[variables('roleActions')]"
    }
    assert deployment["properties"]["parameters"]["assignableScopes"] == {
        "value": "[variables('clusterResourceGroupIds')]"
    }
    role = deployment["properties"]["template"]["resources"][0]["properties"]
    assert role["type"] == "CustomRole"
    assert role["permissions"] == [
        {
            "actions": "[parameters('actions')]",
            "notActions": [],
            "dataActions": [],
            "notDataActions": [],
        }
    ]
    assert role["assignableScopes"] == "[parameters('assignableScopes')]"


def test_custom_role_is_assigned_to_the_app_on_every_cluster_resource_group(template) -> None:
    deployment = nested_deployment_containing(template, "Microsoft.Authorization/roleAssignments")
    assert deployment["copy"]["count"] == "[length(parameters('clusterResourceGroups'))]"
    assert deployment["resourceGroup"] == "[parameters('clusterResourceGroups')[copyIndex()]]"
    assert deployment["properties"]["expressionEvaluationOptions"] == {"scope": "inner"}
    passed = deployment["properties"]["parameters"]
    assert passed["roleDefinitionId"] == {"value": "[variables('roleDefinitionId')]"}
    assert "identity.principalId" in passed["principalId"]["value"]
    assignment = deployment["properties"]["template"]["resources"][0]
    assert "scope" not in assignment  # the nested deployment's resource group
    assert assignment["properties"]["principalType"] == "ServicePrincipal"


def test_the_app_gets_no_other_role_on_the_cluster(template) -> None:
    # Only the storage data roles, the telemetry publisher and the custom role exist.
    assignments = resources_of(template, "Microsoft.Authorization/roleAssignments")
    assert len(assignments) == 3
    text = json.dumps(template).lower()
    for builtin in (
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
        "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
        "4d97b98b-1d4f-4787-a291-c67834d212e7",  # Network Contributor
    ):
        assert builtin not in text


def test_basic_publishing_credentials_and_ftp_are_off(template) -> None:
    # Publishing goes through Entra ID only: no FTP(S) and no SCM basic-auth user.
    site = only(template, "Microsoft.Web/sites")
    assert site["properties"]["siteConfig"]["ftpsState"] == "Disabled"
    policies = {
        r["name"]: r["properties"]
        for _, r in iter_resources(template)
        if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert policies == {
        "[format('{0}/{1}', parameters('functionAppName'), 'ftp')]": {"allow": False},
        "[format('{0}/{1}', parameters('functionAppName'), 'scm')]": {"allow": False},
    }
