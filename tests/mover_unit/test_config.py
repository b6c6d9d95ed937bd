"""parse_config / load_config: a valid document, and every problem reported at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mover.config import ArmSettings, ConfigError, Limits, load_config, parse_config

from .builders import (
    AUDIENCE,
    IP1,
    IP1_CONFIG,
    IP2,
    IP2_CONFIG,
    ISSUER,
    MEMBERS,
    OPERATOR,
    SUB1,
    SUB2,
    TENANT,
    config_dict,
    member_dict,
    sample_config,
)

NIC1 = (
    f"/subscriptions/{SUB1}/resourceGroups/TestGroup1"
    "/providers/Microsoft.Network/networkInterfaces/server01-nic"
)


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.problems


# -- a valid document ---------------------------------------------------------


def test_sample_configuration_parses_into_clusters_members_and_ips():
    config = sample_config()

    assert [c.name for c in config.clusters] == ["cluster1", "cluster2"]
    cluster1 = config.clusters[0]
    assert cluster1.resource_group == "TestGroup1"
    assert [m.name for m in cluster1.members] == ["server01", "server02"]
    assert cluster1.members[0].vm_id == MEMBERS["server01"].vm_id
    assert cluster1.members[0].principal_id == MEMBERS["server01"].principal_id
    assert [(ip.address, ip.ip_config_name) for ip in cluster1.ips] == [(IP1, IP1_CONFIG)]
    assert config.auth.operator_role == "IpMover.Operator"


def test_cluster_inherits_the_top_level_subscription_unless_it_names_its_own():
    config = sample_config()

    assert config.clusters[0].subscription_id == SUB1
    assert config.clusters[1].subscription_id == SUB2


def test_auth_defaults_the_jwks_uri_from_the_tenant():
    auth = sample_config().auth

    assert auth.tenant_id == TENANT
    assert auth.audience == AUDIENCE
    assert auth.issuer == ISSUER
    assert auth.jwks_uri == f"https://login.microsoftonline.com/{TENANT}/discovery/keys"
    assert auth.ca_bundle is None
    assert (auth.key_refresh_seconds, auth.key_refetch_cooldown_seconds) == (3600.0, 60.0)


def test_arm_and_limits_default_when_absent():
    config = sample_config()

    assert config.arm == ArmSettings()
    assert config.arm.endpoint == "https://management.azure.com"
    assert config.limits == Limits()


def test_arm_and_limits_are_read_when_given():
    raw = config_dict()
    raw["arm"] = {
        "endpoint": "https://localhost:8443/",
        "caBundle": "/ca.pem",
        "lroPollSeconds": 2,
        "firstPollSeconds": 3,
    }
    raw["limits"] = {
        "defaultDeadlineSeconds": 60,
        "maxDeadlineSeconds": 600,
        "lockLeaseSeconds": 30,
        "lockPollSeconds": 0.25,
        "historySize": 50,
        "retentionDays": 0.5,
    }

    config = parse_config(raw)

    # The trailing slash is dropped so paths can be appended.
    assert config.arm == ArmSettings("https://localhost:8443", "/ca.pem", 2.0, 3.0)
    assert config.limits == Limits(60.0, 600.0, 30.0, 0.25, 50, retention_days=0.5)


def test_guids_are_normalised_to_lower_case():
    raw = config_dict()
    raw["auth"]["tenantId"] = TENANT.upper()
    raw["subscriptionId"] = SUB1.upper()
    raw["clusters"][0]["members"][0]["principalId"] = MEMBERS["server01"].principal_id.upper()

    config = parse_config(raw)

    assert config.auth.tenant_id == TENANT
    assert config.clusters[0].subscription_id == SUB1
    assert config.clusters[0].members[0].principal_id == MEMBERS["server01"].principal_id


def test_explicit_https_jwks_uri_and_ca_bundle_are_kept():
    raw = config_dict()
    raw["auth"]["jwksUri"] = "https://localhost:9443/keys"
    raw["auth"]["caBundle"] = "/etc/ca.pem"

    auth = parse_config(raw).auth

    assert auth.jwks_uri == "https://localhost:9443/keys"
    assert auth.ca_bundle == "/etc/ca.pem"


# -- lookups on the parsed configuration --------------------------------------


def test_cluster_of_ip_finds_the_owner_and_the_spec():
    config = sample_config()

    cluster, spec = config.cluster_of_ip(IP2)

    assert cluster.name == "cluster2"
    assert (spec.address, spec.ip_config_name) == (IP2, IP2_CONFIG)
    assert config.cluster_of_ip("10.9.9.9") is None


def test_member_lookups_ignore_case_of_principal_name_and_vm_id():
    cluster = sample_config().clusters[0]
    server02 = MEMBERS["server02"]

    assert cluster.member_by_principal(server02.principal_id.upper()).name == "server02"
    assert cluster.member_by_name("SERVER02").name == "server02"
    assert cluster.member_by_vm(server02.vm_id.upper()).name == "server02"
    assert cluster.member_by_principal(MEMBERS["server11"].principal_id) is None
    assert cluster.member_by_name("server11") is None
    assert cluster.member_by_vm(MEMBERS["server11"].vm_id) is None


def test_an_identity_may_be_a_member_of_several_clusters():
    raw = config_dict()
    shared = {**member_dict("server11"), "principalId": MEMBERS["server01"].principal_id}
    raw["clusters"][1]["members"][0] = shared

    found = parse_config(raw).clusters_of_principal(MEMBERS["server01"].principal_id)

    assert [(c.name, m.name) for c, m in found] == [
        ("cluster1", "server01"),
        ("cluster2", "server11"),
    ]


def test_clusters_of_an_unknown_principal_is_empty():
    assert sample_config().clusters_of_principal(OPERATOR) == []


# -- single problems, with the path of the field ------------------------------


def test_every_problem_is_reported_at_once_with_its_field_path():
    raw = config_dict()
    raw["auth"]["tenantId"] = "not-a-guid"
    raw["auth"]["issuer"] = "http://sts.example/"
    raw["arm"] = {"endpoint": "http://management.local"}
    raw["limits"] = {"lockLeaseSeconds": -1}
    raw["clusters"][0]["members"][1]["vmResourceId"] = "/subscriptions/x/resourceGroups/y"
    raw["clusters"][1]["ips"][0]["address"] = "8.8.8.8"

    assert problems_of(raw) == [
        "auth.tenantId: must be a GUID",
        "auth.issuer: must be an https URL",
        "arm.endpoint: must be an https URL",
        "limits.lockLeaseSeconds: must be a positive number",
        "clusters[0].members[1].vmResourceId: must be a virtual machine resource id",
        "clusters[1].ips[0].address: 8.8.8.8 is not a private address",
    ]


def test_config_error_message_joins_all_problems():
    raw = config_dict()
    raw["auth"]["audience"] = ""
    raw["limits"] = {"historySize": 0}

    with pytest.raises(ConfigError) as caught:
        parse_config(raw)

    assert str(caught.value) == (
        "invalid mover configuration: auth.audience: required; "
        "limits.historySize: must be a whole number of at least 1"
    )


@pytest.mark.parametrize("raw", [None, [], "config", 42])
def test_document_that_is_not_an_object_is_refused(raw):
    assert problems_of(raw) == ["the configuration must be a JSON object"]


@pytest.mark.parametrize("auth", [None, "tenant", []])
def test_missing_or_non_object_auth_is_refused(auth):
    raw = config_dict()
    raw["auth"] = auth

    assert problems_of(raw) == ["auth: required (tenantId, audience, issuer, jwksUri)"]


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("tenantId", "contoso.onmicrosoft.com", "auth.tenantId: must be a GUID"),
        ("tenantId", None, "auth.tenantId: must be a GUID"),
        ("audience", None, "auth.audience: required"),
        ("audience", "", "auth.audience: required"),
        ("issuer", None, "auth.issuer: required"),
        ("issuer", "http://sts.windows.net/x/", "auth.issuer: must be an https URL"),
        ("jwksUri", "http://localhost/keys", "auth.jwksUri: must be an https URL"),
    ],
)
def test_bad_auth_field_is_named(key, value, problem):
    raw = config_dict()
    raw["auth"][key] = value

    assert problems_of(raw) == [problem]


@pytest.mark.parametrize("endpoint", ["http://management.azure.com", "", None, 443])
def test_arm_endpoint_must_be_https(endpoint):
    raw = config_dict()
    raw["arm"] = {"endpoint": endpoint}

    assert problems_of(raw) == ["arm.endpoint: must be an https URL"]


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("arm", "lroPollSeconds"),
        ("arm", "firstPollSeconds"),
        ("limits", "defaultDeadlineSeconds"),
        ("limits", "maxDeadlineSeconds"),
        ("limits", "lockLeaseSeconds"),
        ("limits", "lockPollSeconds"),
        ("limits", "retentionDays"),
    ],
)
@pytest.mark.parametrize("value", [0, -5, "10", True, None])
def test_time_and_size_settings_must_be_positive_numbers(section, key, value):
    raw = config_dict()
    raw[section] = {key: value}

    assert problems_of(raw) == [f"{section}.{key}: must be a positive number"]


@pytest.mark.parametrize("key", ["historySize", "maxPendingPerCaller"])
@pytest.mark.parametrize("value", [0, -5, "10", True, None, 0.5, 2.5])
def test_counts_must_be_whole_numbers_of_at_least_one(key, value):
    raw = config_dict()
    raw["limits"] = {key: value}

    assert problems_of(raw) == [f"limits.{key}: must be a whole number of at least 1"]


@pytest.mark.parametrize("value", [0, -1, "5", None])
def test_ip_state_cache_seconds_must_be_positive(value):
    raw = config_dict()
    raw["limits"] = {"ipStateCacheSeconds": value}

    assert problems_of(raw) == ["limits.ipStateCacheSeconds: must be a positive number"]


def test_default_deadline_must_not_exceed_the_maximum():
    raw = config_dict()
    raw["limits"] = {"defaultDeadlineSeconds": 900, "maxDeadlineSeconds": 600}

    assert problems_of(raw) == ["limits.defaultDeadlineSeconds: must not exceed maxDeadlineSeconds"]


def test_retention_must_outlast_the_longest_deadline():
    # A request must not be purged while its node may still retry the POST.
    raw = config_dict()
    raw["limits"] = {"maxDeadlineSeconds": 8640, "defaultDeadlineSeconds": 60, "retentionDays": 0.1}

    assert problems_of(raw) == ["limits.retentionDays: must be longer than maxDeadlineSeconds"]

    raw["limits"]["retentionDays"] = 0.11
    assert parse_config(raw).limits.retention_days == 0.11


@pytest.mark.parametrize("operators", [[OPERATOR], [], None])
def test_operators_by_object_id_are_refused(operators):
    raw = config_dict()
    raw["operators"] = operators

    assert problems_of(raw) == [
        "operators: no longer supported; assign operators the app role named by "
        "auth.operatorRole (default IpMover.Operator) in the app registration"
    ]


def test_the_operator_role_and_key_timings_are_read():
    raw = config_dict()
    raw["auth"] |= {
        "operatorRole": "Mover.Admin",
        "keyRefreshSeconds": 7200,
        "keyRefetchCooldownSeconds": 30,
    }

    auth = parse_config(raw).auth

    assert auth.operator_role == "Mover.Admin"
    assert (auth.key_refresh_seconds, auth.key_refetch_cooldown_seconds) == (7200.0, 30.0)


ROLE_PROBLEM = "auth.operatorRole: an app role value (no spaces, at most 120 characters)"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"operatorRole": ""}, ROLE_PROBLEM),
        ({"operatorRole": "IpMover Operator"}, ROLE_PROBLEM),
        ({"operatorRole": ["IpMover.Operator"]}, ROLE_PROBLEM),
        ({"keyRefreshSeconds": 0}, "auth.keyRefreshSeconds: must be a positive number"),
        (
            {"keyRefreshSeconds": 86400},
            "auth.keyRefreshSeconds: at most 21600 (the keys roll over)",
        ),
        (
            {"keyRefetchCooldownSeconds": -1},
            "auth.keyRefetchCooldownSeconds: must be a positive number",
        ),
        (
            {"keyRefreshSeconds": 60, "keyRefetchCooldownSeconds": 120},
            "auth.keyRefetchCooldownSeconds: must not exceed keyRefreshSeconds",
        ),
    ],
)
def test_bad_operator_role_and_key_timings_are_named(changes, problem):
    raw = config_dict()
    raw["auth"] |= changes

    assert problems_of(raw) == [problem]


@pytest.mark.parametrize("clusters", [None, [], {}])
def test_at_least_one_cluster_is_required(clusters):
    raw = config_dict()
    raw["clusters"] = clusters

    assert problems_of(raw) == ["clusters: at least one cluster is required"]


def test_cluster_that_is_not_an_object_is_refused():
    raw = config_dict()
    raw["clusters"][1] = "cluster2"

    assert problems_of(raw) == ["clusters[1]: must be an object"]


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("name", None, "clusters[0].name: required, letters, digits, '.', '_', '-'"),
        ("name", "cluster 1", "clusters[0].name: required, letters, digits, '.', '_', '-'"),
        ("name", "-cluster", "clusters[0].name: required, letters, digits, '.', '_', '-'"),
        ("resourceGroup", "", "clusters[0].resourceGroup: required"),
        ("resourceGroup", None, "clusters[0].resourceGroup: required"),
        ("members", [], "clusters[0].members: at least one member is required"),
        ("ips", [], "clusters[0].ips: at least one IP is required"),
        (
            "subscriptionId",
            "my-subscription",
            "clusters[0].subscriptionId: a GUID is required (here or at the top)",
        ),
    ],
)
def test_bad_cluster_field_is_named(key, value, problem):
    raw = config_dict()
    raw["clusters"][0][key] = value

    assert problems_of(raw) == [problem]


def test_a_subscription_is_required_here_or_at_the_top():
    raw = config_dict()
    del raw["subscriptionId"]

    # cluster2 names its own subscription; cluster1 relied on the top-level one.
    assert problems_of(raw) == [
        "clusters[0].subscriptionId: a GUID is required (here or at the top)"
    ]


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("name", "", "clusters[0].members[1].name: required"),
        ("name", "server 02", "clusters[0].members[1].name: required"),
        (
            "vmResourceId",
            "/subscriptions/x/resourceGroups/TestGroup1/providers/"
            "Microsoft.Network/networkInterfaces/server02-nic",
            "clusters[0].members[1].vmResourceId: must be a virtual machine resource id",
        ),
        (
            "vmResourceId",
            None,
            "clusters[0].members[1].vmResourceId: must be a virtual machine resource id",
        ),
        (
            "principalId",
            "server02",
            "clusters[0].members[1].principalId: must be the VM identity's object id (GUID)",
        ),
        (
            "nicId",
            MEMBERS["server02"].vm_id,
            "clusters[0].members[1].nicId: must be a network interface resource id",
        ),
        ("nicId", "", "clusters[0].members[1].nicId: must be a network interface resource id"),
        ("nicId", 7, "clusters[0].members[1].nicId: must be a network interface resource id"),
    ],
)
def test_bad_member_field_is_named(key, value, problem):
    raw = config_dict()
    raw["clusters"][0]["members"][1][key] = value

    assert problems_of(raw) == [problem]


def test_a_members_nic_is_optional_and_read_when_given():
    raw = config_dict()
    nic = NIC1
    raw["clusters"][0]["members"][0]["nicId"] = nic

    members = parse_config(raw).clusters[0].members

    assert [m.nic_id for m in members] == [nic, None]


def test_two_members_may_not_name_the_same_nic():
    raw = config_dict()
    nic = NIC1
    for member in raw["clusters"][0]["members"]:
        member["nicId"] = nic
    raw["clusters"][0]["members"][1]["nicId"] = nic.upper()

    assert problems_of(raw) == ["cluster cluster1: two members name the same nicId"]


def test_member_with_several_bad_fields_reports_each():
    raw = config_dict()
    raw["clusters"][0]["members"][0] = {"name": "", "vmResourceId": "vm", "principalId": "p"}

    assert problems_of(raw) == [
        "clusters[0].members[0].name: required",
        "clusters[0].members[0].vmResourceId: must be a virtual machine resource id",
        "clusters[0].members[0].principalId: must be the VM identity's object id (GUID)",
    ]


def test_the_old_name_vm_id_is_still_read():
    raw = config_dict()
    member = raw["clusters"][0]["members"][0]
    member["vmId"] = member.pop("vmResourceId")

    assert parse_config(raw).clusters[0].members[0].vm_id == MEMBERS["server01"].vm_id


def test_both_names_with_one_value_are_fine_and_different_values_are_refused():
    raw = config_dict()
    raw["clusters"][0]["members"][0]["vmId"] = MEMBERS["server01"].vm_id
    assert parse_config(raw).clusters[0].members[0].vm_id == MEMBERS["server01"].vm_id

    raw["clusters"][0]["members"][0]["vmId"] = MEMBERS["server02"].vm_id

    assert problems_of(raw) == [
        "clusters[0].members[0]: vmResourceId and vmId (its old name) differ; give one"
    ]


@pytest.mark.parametrize("field", ["vmResourceId", "vmId"])
def test_a_vm_guid_pasted_as_the_vm_is_refused_with_what_to_give(field):
    raw = config_dict()
    member = raw["clusters"][0]["members"][1]
    del member["vmResourceId"]
    member[field] = "6f0ce5c1-4d5e-4f3a-9b2c-8e7d6a5b4c3d"

    (problem,) = problems_of(raw)

    assert problem.startswith(f"clusters[0].members[1].{field}: 6f0ce5c1-")
    assert "is a VM's GUID (Azure's vmId), not its resource id" in problem
    assert "az vm show --query id" in problem


def _granted(*groups: str) -> tuple[str, ...]:
    return tuple(f"/subscriptions/{sub}/resourcegroups/{rg}".lower() for sub, rg in groups)


def test_clusters_in_the_groups_the_role_was_assigned_on_are_accepted():
    scopes = _granted((SUB1, "TestGroup1"), (SUB2, "TestGroup2"))

    assert len(parse_config(config_dict(), scopes).clusters) == 2


def test_a_cluster_outside_the_groups_the_role_was_assigned_on_is_refused():
    # The template grants only in its own subscription: cluster2 (SUB2) has no role.
    scopes = _granted((SUB1, "TestGroup1"))

    (problem,) = problems_of_granted(config_dict(), scopes)

    assert problem.startswith("cluster cluster2: the app's role is not assigned on ")
    assert f"/subscriptions/{SUB2}/resourcegroups/testgroup2".lower() in problem
    assert "another subscription needs a deployment there" in problem


def test_a_member_vm_or_nic_outside_the_granted_groups_is_refused():
    raw = config_dict()
    raw["clusters"] = raw["clusters"][:1]
    raw["clusters"][0]["members"][1]["nicId"] = NIC1.replace("TestGroup1", "NetGroup")
    scopes = _granted((SUB1, "TestGroup1"))

    (problem,) = problems_of_granted(raw, scopes)

    assert f"/subscriptions/{SUB1}/resourcegroups/netgroup".lower() in problem


def problems_of_granted(raw: Any, scopes: tuple[str, ...]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, scopes)
    return caught.value.problems


def test_load_config_reads_the_role_scopes_setting():
    scopes = json.dumps([f"/subscriptions/{SUB1}/resourceGroups/TestGroup1"])
    env = {"MOVER_CONFIG": json.dumps(config_dict()), "MOVER_ROLE_SCOPES": scopes}

    with pytest.raises(ConfigError) as caught:
        load_config(env)

    assert [p.split(":")[0] for p in caught.value.problems] == ["cluster cluster2"]


@pytest.mark.parametrize("text", ["[1]", "{}", "not json", '["/subscriptions/x"]'])
def test_a_malformed_role_scopes_setting_is_refused(text):
    env = {"MOVER_CONFIG": json.dumps(config_dict()), "MOVER_ROLE_SCOPES": text}

    with pytest.raises(ConfigError) as caught:
        load_config(env)

    assert caught.value.problems == [
        "MOVER_ROLE_SCOPES: must be a JSON array of resource group ids"
    ]


def test_a_config_error_carries_the_auth_settings_when_they_alone_are_valid():
    raw = config_dict()
    raw["clusters"][0]["ips"] = []

    with pytest.raises(ConfigError) as caught:
        parse_config(raw)

    assert caught.value.auth is not None and caught.value.auth.audience == AUDIENCE
    raw["auth"]["tenantId"] = "nope"
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.auth is None


def test_member_that_is_not_an_object_is_refused():
    raw = config_dict()
    raw["clusters"][0]["members"].append("server03")

    assert problems_of(raw) == ["clusters[0].members[2]: must be an object"]


def test_vm_id_is_matched_case_insensitively():
    raw = config_dict()
    raw["clusters"][0]["members"][0]["vmResourceId"] = MEMBERS["server01"].vm_id.lower()

    assert parse_config(raw).clusters[0].members[0].vm_id == MEMBERS["server01"].vm_id.lower()


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", "clusters[0].ips[0].address: 8.8.8.8 is not a private address"),
        ("20.50.1.2", "clusters[0].ips[0].address: 20.50.1.2 is not a private address"),
        ("10.5.0.256", "clusters[0].ips[0].address: '10.5.0.256' is not an IPv4 address"),
        ("010.5.0.110", "clusters[0].ips[0].address: '010.5.0.110' is not an IPv4 address"),
        ("fd00::10", "clusters[0].ips[0].address: 'fd00::10' is not an IPv4 address"),
        ("10.5.0.110/32", "clusters[0].ips[0].address: '10.5.0.110/32' is not an IPv4 address"),
        (None, "clusters[0].ips[0].address: None is not an IPv4 address"),
    ],
)
def test_ip_must_be_a_private_ipv4_address(address, problem):
    raw = config_dict()
    raw["clusters"][0]["ips"][0]["address"] = address

    assert problems_of(raw) == [problem]


@pytest.mark.parametrize("address", ["10.0.0.4", "172.16.5.4", "192.168.1.10"])
def test_private_ranges_are_accepted(address):
    raw = config_dict()
    raw["clusters"][0]["ips"][0]["address"] = address

    assert parse_config(raw).cluster_of_ip(address)[0].name == "cluster1"


@pytest.mark.parametrize("name", [None, "", "ip config", "_vip"])
def test_ip_config_name_is_required(name):
    raw = config_dict()
    raw["clusters"][0]["ips"][0]["ipConfigName"] = name

    assert problems_of(raw) == ["clusters[0].ips[0].ipConfigName: required"]


def test_ip_spec_that_is_not_an_object_is_refused():
    raw = config_dict()
    raw["clusters"][0]["ips"] = [IP1]

    assert problems_of(raw) == ["clusters[0].ips[0]: must be an object"]


def test_the_same_ip_in_two_clusters_is_refused():
    raw = config_dict()
    raw["clusters"][1]["ips"].append({"address": IP1, "ipConfigName": "ipconfig9"})

    assert problems_of(raw) == [f"IP {IP1} belongs to both cluster1 and cluster2"]


def test_the_same_ip_twice_in_one_cluster_is_refused():
    raw = config_dict()
    raw["clusters"][0]["ips"].append({"address": IP1, "ipConfigName": "ipconfig3"})

    assert problems_of(raw) == [f"IP {IP1} belongs to both cluster1 and cluster1"]


def test_cluster_names_must_be_unique_ignoring_case():
    raw = config_dict()
    raw["clusters"][1]["name"] = "CLUSTER1"

    assert problems_of(raw) == ["cluster CLUSTER1: the name is used twice"]


@pytest.mark.parametrize(
    "duplicate",
    [
        {**member_dict("server02"), "name": "SERVER01"},
        {**member_dict("server02"), "principalId": MEMBERS["server01"].principal_id.upper()},
    ],
    ids=["name", "principal"],
)
def test_member_names_and_principals_are_unique_within_a_cluster(duplicate):
    raw = config_dict()
    raw["clusters"][0]["members"][1] = duplicate

    assert problems_of(raw) == ["cluster cluster1: member names and principal ids must be unique"]


# -- load_config --------------------------------------------------------------


def test_load_config_reads_the_mover_config_setting():
    config = load_config({"MOVER_CONFIG": json.dumps(config_dict())})

    assert [c.name for c in config.clusters] == ["cluster1", "cluster2"]


def test_load_config_reads_the_file_named_by_mover_config_file(tmp_path):
    path = tmp_path / "mover.json"
    path.write_text(json.dumps(config_dict()))

    config = load_config({"MOVER_CONFIG_FILE": str(path)})

    assert config.cluster_of_ip(IP1)[0].name == "cluster1"


def test_load_config_prefers_the_setting_over_the_file(tmp_path):
    raw = config_dict()
    raw["clusters"] = raw["clusters"][:1]
    missing = tmp_path / "absent.json"

    config = load_config({"MOVER_CONFIG": json.dumps(raw), "MOVER_CONFIG_FILE": str(missing)})

    assert [c.name for c in config.clusters] == ["cluster1"]


def test_load_config_uses_the_file_when_the_setting_is_empty(tmp_path):
    path = tmp_path / "mover.json"
    path.write_text(json.dumps(config_dict()))

    config = load_config({"MOVER_CONFIG": "", "MOVER_CONFIG_FILE": str(path)})

    assert len(config.clusters) == 2


def test_load_config_without_either_setting_says_so():
    with pytest.raises(ConfigError) as caught:
        load_config({})

    assert caught.value.problems == ["neither MOVER_CONFIG nor MOVER_CONFIG_FILE is set"]


def test_load_config_names_a_missing_file(tmp_path):
    missing = tmp_path / "absent.json"

    with pytest.raises(ConfigError) as caught:
        load_config({"MOVER_CONFIG_FILE": str(missing)})

    assert caught.value.problems == [f"MOVER_CONFIG_FILE {missing}: No such file or directory"]


@pytest.mark.parametrize("text", ["{", "clusters: []", "{'auth': 1}"])
def test_load_config_refuses_invalid_json(text):
    with pytest.raises(ConfigError) as caught:
        load_config({"MOVER_CONFIG": text})

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("not valid JSON: ")


def test_load_config_validates_the_document():
    raw = config_dict()
    raw["clusters"][0]["ips"][0]["address"] = "8.8.8.8"

    with pytest.raises(ConfigError) as caught:
        load_config({"MOVER_CONFIG": json.dumps(raw)})

    assert caught.value.problems == ["clusters[0].ips[0].address: 8.8.8.8 is not a private address"]


def test_load_config_reads_os_environ_by_default(monkeypatch):
    monkeypatch.delenv("MOVER_CONFIG_FILE", raising=False)
    monkeypatch.setenv("MOVER_CONFIG", json.dumps(config_dict()))

    assert len(load_config().clusters) == 2


# -- known bugs ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["issuer", "jwksUri"])
def test_non_string_issuer_or_jwks_uri_is_a_config_problem(key):
    raw = config_dict()
    raw["auth"][key] = 443

    assert problems_of(raw) == [f"auth.{key}: must be an https URL"]


@pytest.mark.parametrize(("section", "value"), [("arm", "https://arm.local"), ("limits", [300])])
def test_non_object_arm_or_limits_is_a_config_problem(section, value):
    raw = config_dict()
    raw[section] = value

    problems = problems_of(raw)

    assert len(problems) == 1
    assert problems[0].startswith(f"{section}")


@pytest.mark.parametrize("literal", ["Infinity", "NaN"])
def test_non_finite_limits_are_refused(literal):
    text = json.dumps(config_dict())[:-1] + f', "limits": {{"maxDeadlineSeconds": {literal}}}}}'

    with pytest.raises(ConfigError) as caught:
        load_config({"MOVER_CONFIG": text})

    assert caught.value.problems == ["limits.maxDeadlineSeconds: must be a positive number"]


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (("members", 0), "principalId"),
        (("members", 0), "vmResourceId"),
        (("members", 0), "name"),
        (("ips", 0), "ipConfigName"),
    ],
)
def test_value_with_trailing_newline_is_refused(where, key):
    raw = config_dict()
    item = raw["clusters"][0][where[0]][where[1]]
    item[key] = item[key] + "\n"

    problems = problems_of(raw)

    assert len(problems) == 1
    assert problems[0].startswith(f"clusters[0].{where[0]}[{where[1]}].{key}: ")


def test_two_ips_of_one_cluster_need_their_own_ip_config_names():
    raw = config_dict()
    cluster = raw["clusters"][0]
    cluster["ips"].append(
        {"address": "10.5.0.111", "ipConfigName": cluster["ips"][0]["ipConfigName"]}
    )

    assert problems_of(raw) == [f"cluster {cluster['name']}: each IP needs its own ipConfigName"]


def test_the_split_brain_window_is_read_and_must_be_positive():
    raw = config_dict()
    raw["limits"] = {"splitBrainWindowSeconds": 15}
    assert parse_config(raw).limits.split_brain_window_seconds == 15.0
    assert Limits().split_brain_window_seconds == 60.0
    raw["limits"] = {"splitBrainWindowSeconds": 0}
    with pytest.raises(ConfigError, match=r"limits\.splitBrainWindowSeconds"):
        parse_config(raw)
