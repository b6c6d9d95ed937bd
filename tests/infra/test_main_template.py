"""infra/main.json: a well-formed template that deploys what docs/deployment.md promises."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from emulator.host.schedules import parse_timer_schedule
from emulator.launch import REPO_ROOT
from maintenance.retention import DEFAULT_SCHEDULE
from mover.config import load_config
from mover.telemetry import MOVE_EVENT, ArmTally, move_telemetry

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
# Private DNS zones and links as in Azure/azure-quickstart-templates
# quickstarts/microsoft.web/function-app-private-endpoints-storage-private-endpoints (2020-06-01,
# also azure-rest-api-specs specification/privatedns stable/2020-06-01); private endpoints from
# specification/network stable/2024-05-01; scheduledQueryRules from specification/monitor
# Microsoft.Insights stable/2023-12-01 (its createOrUpdateScheduledQueryRule example is the shape);
# actionGroups from stable/2023-01-01.
API_VERSIONS = {
    "microsoft.network/privatednszones": "2020-06-01",
    "microsoft.network/privatednszones/virtualnetworklinks": "2020-06-01",
    "microsoft.network/privateendpoints": "2024-05-01",
    "microsoft.network/privateendpoints/privatednszonegroups": "2024-05-01",
    "microsoft.insights/scheduledqueryrules": "2023-12-01",
    "microsoft.insights/actiongroups": "2023-01-01",
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


# --- private network (docs/deployment.md, "Private network") ----------------------------------


SITE_ID = "[resourceId('Microsoft.Web/sites', parameters('functionAppName'))]"


def test_private_network_is_the_default(template) -> None:
    mode = template["parameters"]["networkAccess"]
    assert mode["defaultValue"] == "Private"
    assert mode["allowedValues"] == ["Private", "Public"]
    assert template["variables"]["private"] == "[equals(parameters('networkAccess'), 'Private')]"


def test_private_mode_turns_public_access_off_on_the_app_and_its_storage(template) -> None:
    storage = only(template, "Microsoft.Storage/storageAccounts")["properties"]
    assert storage["publicNetworkAccess"] == "[if(variables('private'), 'Disabled', 'Enabled')]"
    assert storage["networkAcls"]["defaultAction"] == "[if(variables('private'), 'Deny', 'Allow')]"
    site = only(template, "Microsoft.Web/sites")["properties"]
    assert site["publicNetworkAccess"] == "[if(variables('private'), 'Disabled', 'Enabled')]"


def test_the_app_goes_out_through_vnet_integration_in_private_mode(template) -> None:
    site = only(template, "Microsoft.Web/sites")
    assert site["properties"]["virtualNetworkSubnetId"] == (
        "[if(variables('private'), parameters('appIntegrationSubnetId'), null())]"
    )
    # The host must find its storage reachable when it starts.
    assert "storagePrivateDnsZoneGroups" in site["dependsOn"]


def test_private_endpoints_cover_the_app_and_the_storage_blob_queue_and_table(template) -> None:
    endpoints = resources_of(template, "Microsoft.Network/privateEndpoints")
    assert len(endpoints) == 2  # the storage loop and the app's
    for endpoint in endpoints:
        assert endpoint["condition"] == "[variables('private')]"
        assert endpoint["properties"]["subnet"] == {"id": "[parameters('privateEndpointSubnetId')]"}
    storage, site = sorted(endpoints, key=lambda r: "copy" not in r)
    assert [link["groupId"] for link in template["variables"]["storagePrivateLinks"]] == [
        "blob",
        "queue",
        "table",
    ]
    assert storage["copy"]["count"] == "[length(variables('storagePrivateLinks'))]"
    (connection,) = storage["properties"]["privateLinkServiceConnections"]
    assert connection["properties"]["privateLinkServiceId"] == (
        "[resourceId('Microsoft.Storage/storageAccounts', parameters('storageAccountName'))]"
    )
    assert connection["properties"]["groupIds"] == [
        "[variables('storagePrivateLinks')[copyIndex()].groupId]"
    ]
    (connection,) = site["properties"]["privateLinkServiceConnections"]
    assert connection["properties"] == {
        "privateLinkServiceId": SITE_ID,
        "groupIds": ["sites"],
    }


def test_each_private_endpoint_registers_in_its_privatelink_zone(template) -> None:
    variables = template["variables"]
    assert variables["sitePrivateDnsZone"] == "privatelink.azurewebsites.net"
    assert variables["privateDnsZones"][0] == "privatelink.azurewebsites.net"
    zones = {link["groupId"]: link["zone"] for link in variables["storagePrivateLinks"]}
    for group, zone in zones.items():
        # privatelink.blob.core.windows.net in Azure's public cloud.
        assert zone == f"[format('privatelink.{group}.{{0}}', environment().suffixes.storage)]"
        assert zone in variables["privateDnsZones"]
    groups = resources_of(template, "Microsoft.Network/privateEndpoints/privateDnsZoneGroups")
    assert len(groups) == 2
    by_loop = {("copy" in g): g for g in groups}
    # Each zone group belongs to the endpoint of the same name, and names the zone of its kind.
    storage_group = by_loop[True]
    assert storage_group["name"] == (
        "[format('{0}-pe-{1}/default', parameters('storageAccountName'), "
        "variables('storagePrivateLinks')[copyIndex()].groupId)]"
    )
    storage_endpoint = next(
        e for e in resources_of(template, "Microsoft.Network/privateEndpoints") if "copy" in e
    )
    assert storage_group["name"].replace("/default", "") == storage_endpoint["name"]
    (config,) = storage_group["properties"]["privateDnsZoneConfigs"]
    assert (
        "variables('storagePrivateLinks')[copyIndex()].zone"
        in (config["properties"]["privateDnsZoneId"])
    )
    site_group = by_loop[False]
    assert site_group["name"] == "[format('{0}/default', variables('sitePrivateEndpointName'))]"
    (config,) = site_group["properties"]["privateDnsZoneConfigs"]
    assert "variables('sitePrivateDnsZone')" in config["properties"]["privateDnsZoneId"]
    for group in groups:
        zone_id = group["properties"]["privateDnsZoneConfigs"][0]["properties"]["privateDnsZoneId"]
        # Zones of this group, or of the organization's hub (privateDnsZonesResourceGroupId).
        assert zone_id.startswith(
            "[resourceId(variables('privateDnsZonesSubscriptionId'), "
            "variables('privateDnsZonesResourceGroup'), 'Microsoft.Network/privateDnsZones', "
        )
        assert {"privateDnsZones", "privateDnsZoneLinks"} <= set(group["dependsOn"])


def test_the_zones_are_created_and_linked_to_the_clusters_vnets_unless_a_hub_has_them(
    template,
) -> None:
    variables = template["variables"]
    assert variables["createPrivateDnsZones"] == (
        "[and(variables('private'), empty(parameters('privateDnsZonesResourceGroupId')))]"
    )
    zones = only(template, "Microsoft.Network/privateDnsZones")
    assert zones["condition"] == "[variables('createPrivateDnsZones')]"
    assert zones["location"] == "global"
    assert zones["copy"]["count"] == "[length(variables('privateDnsZones'))]"
    links = only(template, "Microsoft.Network/privateDnsZones/virtualNetworkLinks")
    assert links["condition"] == "[variables('createPrivateDnsZones')]"
    assert links["copy"]["count"] == (
        "[mul(length(variables('privateDnsZones')), "
        "length(parameters('privateDnsVirtualNetworkIds')))]"
    )
    assert links["properties"]["registrationEnabled"] is False
    assert "privateDnsVirtualNetworkIds" in links["properties"]["virtualNetwork"]["id"]


def test_the_app_knows_where_its_role_is_assigned_and_its_configuration_agrees(template) -> None:
    # MOVER_ROLE_SCOPES is the template's list of cluster resource group ids, as JSON text;
    # the mover refuses a cluster outside it (mover/config.py).
    setting = app_settings(template)["MOVER_ROLE_SCOPES"]
    assert setting == "[string(variables('clusterResourceGroupIds'))]"
    (loop,) = template["variables"]["copy"]
    assert loop["name"] == "clusterResourceGroupIds"
    # What string() of that array gives for the example's subscription and group.
    sub = "22222222-2222-2222-2222-222222222222"
    scopes = json.dumps([f"/subscriptions/{sub}/resourceGroups/TestGroup1"])
    config = {
        "subscriptionId": sub,
        "auth": {
            "tenantId": "00000000-0000-0000-0000-000000000000",
            "audience": "api://x",
            "issuer": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        },
        "clusters": [
            {
                "name": "ha1",
                "resourceGroup": "TestGroup1",
                "members": [
                    {
                        "name": "server01",
                        "vmResourceId": f"/subscriptions/{sub}/resourceGroups/TestGroup1/providers"
                        "/Microsoft.Compute/virtualMachines/server01",
                        "principalId": "33333333-3333-3333-3333-333333333333",
                    }
                ],
                "ips": [{"address": "10.5.0.110", "ipConfigName": "ipconfig2"}],
            }
        ],
    }
    env = {"MOVER_CONFIG": json.dumps(config), "MOVER_ROLE_SCOPES": scopes}
    assert [c.name for c in load_config(env).clusters] == ["ha1"]


# --- zone redundancy ----------------------------------------------------------------------------


def test_storage_is_zone_redundant_by_default_and_the_plan_on_request(template) -> None:
    assert template["parameters"]["storageSku"]["defaultValue"] == "Standard_ZRS"
    assert template["parameters"]["zoneRedundant"]["defaultValue"] is False
    plan = only(template, "Microsoft.Web/serverfarms")
    assert plan["properties"]["zoneRedundant"] == "[parameters('zoneRedundant')]"


# --- alerts on the per-move telemetry (docs/operations.md) -------------------------------------


def _rules(template) -> dict[str, dict[str, Any]]:
    return {rule["name"]: rule for rule in template["variables"]["alertRules"]}


def test_alert_rules_watch_failed_moves_throttling_and_the_configuration(template) -> None:
    rules = _rules(template)
    assert set(rules) == {"failed-moves", "arm-throttling", "not-configured"}
    loop = only(template, "Microsoft.Insights/scheduledQueryRules")
    assert loop["condition"] == "[parameters('enableAlerts')]"
    assert loop["copy"]["count"] == "[length(variables('alertRules'))]"
    properties = loop["properties"]
    assert properties["scopes"] == [
        "[resourceId('Microsoft.Insights/components', parameters('applicationInsightsName'))]"
    ]
    (criterion,) = properties["criteria"]["allOf"]
    assert criterion["query"] == "[variables('alertRules')[copyIndex()].query]"
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == (
        "Count",
        "GreaterThan",
        0,
    )
    assert properties["actions"] == {"actionGroups": "[variables('alertActionGroups')]"}
    for rule in rules.values():
        assert rule["severity"] in (0, 1, 2, 3, 4)


def test_alert_queries_read_the_telemetry_line_the_app_writes(template) -> None:
    # The prefix, the offset of the JSON and every field the queries name come from the app.
    fields = move_telemetry(
        {
            "requestId": "r",
            "ip": "10.5.0.110",
            "action": "acquire",
            "cluster": "ha1",
            "status": "failed",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "finishedAt": "2026-01-01T00:00:01.000Z",
        },
        ArmTally(),
        force=False,
    )
    line = fields.line()
    for name in ("failed-moves", "arm-throttling"):
        query = _rules(template)[name]["query"]
        prefix = re.search(r'message startswith "([^"]+)"', query).group(1)
        assert line.startswith(prefix) and prefix == MOVE_EVENT + " {"
        offset = int(re.search(r"substring\(message, (\d+)\)", query).group(1))
        assert json.loads(line[offset:]) == fields.to_dict()
        for used in re.findall(r"\bm\.(\w+)", query):
            assert used in fields.to_dict(), used


def test_the_configuration_alert_matches_the_apps_error_line(template) -> None:
    from mover.config import ConfigError

    query = _rules(template)["not-configured"]["query"]
    prefix = re.search(r'message startswith "([^"]+)"', query).group(1)
    assert str(ConfigError(["x"])).startswith(prefix)


def test_telemetry_traces_are_never_sampled_away() -> None:
    # Application Insights samples by default; alerts and audit queries need every line.
    host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert "Trace" in sampling["excludedTypes"].split(";")


def test_an_email_address_gets_an_action_group_the_rules_notify(template) -> None:
    group = only(template, "Microsoft.Insights/actionGroups")
    assert group["condition"] == "[not(empty(parameters('alertEmailAddress')))]"
    assert group["location"] == "Global"
    assert len(group["properties"]["groupShortName"]) <= 12
    assert "variables('actionGroupName')" in template["variables"]["alertActionGroups"]
    assert "parameters('alertActionGroupIds')" in template["variables"]["alertActionGroups"]
