"""authorize_move / authorize_read_ip: members act for themselves on their cluster's IPs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mover.access import ApiError, authorize_move, authorize_read_ip, is_operator
from mover.config import parse_config
from mover.tokens import Caller

from .builders import (
    IP1,
    IP1_CONFIG,
    IP2,
    MEMBERS,
    OPERATOR,
    UNKNOWN_IP,
    caller_for,
    config_dict,
    member_dict,
    operator_caller,
    sample_config,
    stranger_caller,
)


@pytest.fixture
def config():
    return sample_config()


def denied(call, *args) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


# -- members ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["server01", "server02"])
def test_member_may_move_its_clusters_ip_to_itself(config, name):
    grant = authorize_move(config, caller_for(name), IP1, None)

    assert grant.cluster.name == "cluster1"
    assert (grant.ip.address, grant.ip.ip_config_name) == (IP1, IP1_CONFIG)
    assert grant.target.name == name
    assert grant.target.vm_id == MEMBERS[name].vm_id
    assert grant.by_operator is False


@pytest.mark.parametrize("target", ["server01", "SERVER01", ""])
def test_member_may_name_itself_as_target(config, target):
    grant = authorize_move(config, caller_for("server01"), IP1, target)

    assert grant.target.name == "server01"


def test_member_may_not_move_the_ip_to_another_member(config):
    error = denied(authorize_move, config, caller_for("server01"), IP1, "server02")

    assert (error.status, error.code) == (403, "forbidden")
    assert error.message == "a member can only move an IP to itself"


def test_member_of_another_cluster_may_not_move_the_ip(config):
    error = denied(authorize_move, config, caller_for("server11"), IP1, None)

    assert (error.status, error.code) == (403, "not_a_member")
    assert error.message == f"the caller is not a member of cluster cluster1, which owns {IP1}"


def test_member_of_another_cluster_may_not_name_a_member_as_target(config):
    error = denied(authorize_move, config, caller_for("server11"), IP1, "server01")

    assert (error.status, error.code) == (403, "not_a_member")


def test_unknown_identity_may_not_move_the_ip(config):
    error = denied(authorize_move, config, stranger_caller(), IP1, None)

    assert (error.status, error.code) == (403, "not_a_member")


def test_unknown_ip_is_not_found(config):
    error = denied(authorize_move, config, caller_for("server01"), UNKNOWN_IP, None)

    assert (error.status, error.code) == (404, "unknown_ip")
    assert error.message == f"{UNKNOWN_IP} belongs to no configured cluster"


def test_members_of_the_second_cluster_act_on_its_own_ip(config):
    grant = authorize_move(config, caller_for("server12"), IP2, None)

    assert (grant.cluster.name, grant.target.name) == ("cluster2", "server12")
    assert grant.cluster.subscription_id == config.clusters[1].subscription_id


# -- the token's VM -----------------------------------------------------------


def test_token_without_vm_id_is_accepted_on_the_principal_alone(config):
    grant = authorize_move(config, caller_for("server01", vm=None), IP1, None)

    assert grant.target.name == "server01"


def test_token_vm_id_is_compared_case_insensitively(config):
    caller = caller_for("server01", vm=MEMBERS["server01"].vm_id.upper())

    assert authorize_move(config, caller, IP1, None).target.name == "server01"


@pytest.mark.parametrize(
    "vm",
    [
        MEMBERS["server02"].vm_id,  # another member's VM
        MEMBERS["server01"].vm_id.replace("server01", "server01-new"),  # identity moved
    ],
    ids=["other-members-vm", "other-vm"],
)
def test_token_vm_must_be_the_members_configured_vm(config, vm):
    error = denied(authorize_move, config, caller_for("server01", vm=vm), IP1, None)

    assert (error.status, error.code) == (403, "not_a_member")
    assert error.message == "the token's VM is not the VM configured for this identity"


# -- the kind of token ---------------------------------------------------------


def test_a_delegated_token_of_a_members_object_id_is_no_member(config):
    delegated = caller_for("server01", app_only=False)

    error = denied(authorize_move, config, delegated, IP1, None)
    read = denied(authorize_read_ip, config, delegated, IP1)

    assert (error.status, error.code) == (403, "not_a_member")
    assert error.message == (
        "only an app-only token of a member VM's managed identity identifies a member"
    )
    assert (read.status, read.code) == (403, "not_a_member")


def test_a_member_is_recognised_without_the_vm_claim_and_without_roles(config):
    caller = caller_for("server02", vm=None)

    assert caller.roles == frozenset()
    assert authorize_move(config, caller, IP1, None).target.name == "server02"


# -- operators ----------------------------------------------------------------


def test_operator_is_recognised_by_the_app_role(config):
    assert is_operator(config, operator_caller())
    assert is_operator(config, operator_caller(app_only=True))  # a service principal
    assert not is_operator(config, caller_for("server01"))


def test_an_operators_object_id_without_the_app_role_is_nobody(config):
    no_role = Caller(
        principal_id=OPERATOR, vm_id=None, app_id=None, app_only=False, roles=frozenset()
    )
    other_role = Caller(
        principal_id=OPERATOR,
        vm_id=None,
        app_id=None,
        app_only=True,
        roles=frozenset({"IpMover.Node", "ipmover.operator"}),  # role values match exactly
    )

    for caller in (no_role, other_role):
        assert not is_operator(config, caller)
        error = denied(authorize_move, config, caller, IP1, "server02")
        assert (error.status, error.code) == (403, "not_a_member")


def test_the_operator_role_is_the_configured_one():
    raw = config_dict()
    raw["auth"]["operatorRole"] = "Mover.Admin"
    config = parse_config(raw)

    assert not is_operator(config, operator_caller())
    assert is_operator(config, replace(operator_caller(), roles=frozenset({"Mover.Admin"})))


def test_a_member_with_the_operator_role_acts_as_operator(config):
    caller = caller_for("server01", roles={"IpMover.Operator"})

    grant = authorize_move(config, caller, IP1, "server02")

    assert (grant.target.name, grant.by_operator) == ("server02", True)


@pytest.mark.parametrize("target", [None, ""])
def test_operator_must_name_a_target(config, target):
    error = denied(authorize_move, config, operator_caller(), IP1, target)

    assert (error.status, error.code) == (403, "forbidden")
    assert error.message == "operators must name the member to act for ('target')"


@pytest.mark.parametrize(("ip", "target"), [(IP1, "server02"), (IP2, "Server11")])
def test_operator_acts_for_the_named_member(config, ip, target):
    grant = authorize_move(config, operator_caller(), ip, target)

    assert grant.target.name == target.lower()
    assert grant.by_operator is True


def test_operator_target_must_belong_to_the_ips_cluster(config):
    error = denied(authorize_move, config, operator_caller(), IP1, "server11")

    assert (error.status, error.code) == (403, "forbidden")
    assert error.message == "server11 is not a member of cluster cluster1"


def test_operator_asking_for_an_unknown_ip_gets_not_found(config):
    error = denied(authorize_move, config, operator_caller(), UNKNOWN_IP, "server01")

    assert (error.status, error.code) == (404, "unknown_ip")


def test_an_identity_in_two_clusters_acts_as_the_member_of_the_ips_cluster():
    raw = config_dict()
    raw["clusters"][1]["members"][0] = {
        **member_dict("server11"),
        "principalId": MEMBERS["server01"].principal_id,
    }
    config = parse_config(raw)
    caller = caller_for("server01", vm=None)

    assert authorize_move(config, caller, IP1, None).target.name == "server01"
    assert authorize_move(config, caller, IP2, None).target.name == "server11"


# -- reading an IP ------------------------------------------------------------


@pytest.mark.parametrize(
    "caller", [caller_for("server02"), operator_caller()], ids=["member", "operator"]
)
def test_members_and_operators_may_read_the_ip(config, caller):
    cluster, spec = authorize_read_ip(config, caller, IP1)

    assert cluster.name == "cluster1"
    assert spec.address == IP1


@pytest.mark.parametrize(
    "caller",
    [
        caller_for("server11"),
        stranger_caller(),
        caller_for("server01", vm=MEMBERS["server02"].vm_id),
    ],
    ids=["other-cluster", "stranger", "wrong-vm"],
)
def test_others_may_not_read_the_ip(config, caller):
    error = denied(authorize_read_ip, config, caller, IP1)

    assert (error.status, error.code) == (403, "not_a_member")


def test_reading_an_unknown_ip_is_not_found(config):
    error = denied(authorize_read_ip, config, operator_caller(), UNKNOWN_IP)

    assert (error.status, error.code) == (404, "unknown_ip")
