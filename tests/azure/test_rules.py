"""Decisions tested directly as plain functions: NIC rules, buckets, topologies, settings."""

from __future__ import annotations

import ipaddress

import pytest

from emulator.azure.errors import ArmError
from emulator.azure.nic_rules import SubnetInfo, check_if_match, normalize_ip_configurations
from emulator.azure.settings import Settings
from emulator.azure.throttling import TokenBucket
from emulator.azure.topology import load_topology

SUBNET_ID = (
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/a"
)
SUBNETS = {SUBNET_ID.lower(): SubnetInfo(SUBNET_ID, ipaddress.ip_network("10.0.0.0/24"))}


def _config(name: str, ip: str | None = None, primary: bool | None = None) -> dict:
    props: dict = {"subnet": {"id": SUBNET_ID.upper()}}
    if ip:
        props["privateIPAddress"] = ip
    if primary is not None:
        props["primary"] = primary
    return {"name": name, "properties": props, "etag": "ignored", "id": "ignored"}


def _normalize(configs: list[dict], holders: dict[str, str] | None = None) -> list[dict]:
    return normalize_ip_configurations(
        "nic-id", configs, SUBNETS, holders or {}, lambda s, t: "10.0.0.9"
    )


def test_single_config_becomes_primary_and_gets_canonical_subnet_id() -> None:
    (config,) = _normalize([_config("ipconfig1", "10.0.0.5")])

    assert config["properties"]["primary"] is True
    assert config["properties"]["subnet"]["id"] == SUBNET_ID
    assert config["properties"]["privateIPAllocationMethod"] == "Static"
    assert "etag" not in config


def test_dynamic_config_without_address_is_allocated() -> None:
    (config,) = _normalize([_config("ipconfig1")])

    assert config["properties"]["privateIPAddress"] == "10.0.0.9"
    assert config["properties"]["privateIPAllocationMethod"] == "Dynamic"


def test_address_held_elsewhere_is_allocated_naming_the_holder() -> None:
    with pytest.raises(ArmError) as caught:
        _normalize([_config("ipconfig1", "10.0.0.5")], {"10.0.0.5": "other/ipConfigurations/x"})

    assert (caught.value.status, caught.value.code) == (400, "PrivateIPAddressIsAllocated")
    assert caught.value.message == (
        "IP configuration nic-id/ipConfigurations/ipconfig1 is using the private IP address "
        "10.0.0.5 which is already allocated to resource other/ipConfigurations/x."
    )


def test_same_address_twice_on_one_nic_names_the_other_ip_configuration() -> None:
    with pytest.raises(ArmError) as caught:
        _normalize([_config("a", "10.0.0.5", True), _config("b", "10.0.0.5", False)])

    assert caught.value.code == "PrivateIPAddressIsAllocated"
    assert caught.value.message.endswith("allocated to resource nic-id/ipConfigurations/a.")


def test_no_configs_is_refused() -> None:
    with pytest.raises(ArmError):
        _normalize([])


IF_MATCH_CASES = [
    (None, 'W/"a"', True),
    ('W/"a"', 'W/"a"', True),
    ("*", 'W/"a"', True),
    ('W/"b"', 'W/"a"', False),
    ("*", None, False),
]


@pytest.mark.parametrize(("if_match", "current", "ok"), IF_MATCH_CASES)
def test_if_match(if_match: str | None, current: str | None, ok: bool) -> None:
    if ok:
        check_if_match(if_match, current, "id")
    else:
        with pytest.raises(ArmError) as caught:
            check_if_match(if_match, current, "id")
        assert (caught.value.status, caught.value.code) == (412, "PreconditionFailed")


def test_token_bucket_refills_at_rate_up_to_burst() -> None:
    bucket = TokenBucket(tokens=2.0, updated=0.0)

    assert [bucket.take(1.0, 2, 0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(1.0, 2, 1.0) is True
    assert bucket.take(1.0, 2, 100.0) and bucket.tokens == 1.0


def test_scale_topology_has_two_vms_per_cluster_and_free_secondaries() -> None:
    topology = load_topology("scale:3")

    assert [vm.name for vm in topology.vms] == [
        "c0001n1",
        "c0001n2",
        "c0002n1",
        "c0002n2",
        "c0003n1",
        "c0003n2",
    ]
    assert topology.clusters[2].secondary_ips[0].ip == "10.8.128.12"
    primaries = {c.private_ip for vm in topology.vms for n in vm.nics for c in n.ip_configurations}
    assert len(primaries) == 6 and "10.8.128.12" not in primaries


def test_seed_topology_is_the_vendor_article() -> None:
    topology = load_topology("seed")

    assert (topology.resource_group, topology.location) == ("TestGroup1", "westcentralus")
    assert [vm.nics[0].ip_configurations[0].private_ip for vm in topology.vms] == [
        "10.5.0.101",
        "10.5.0.102",
    ]
    assert topology.clusters[0].secondary_ips[0].ip == "10.5.0.110"


def test_settings_reject_unknown_and_bad_values() -> None:
    settings = Settings()
    settings.update({"retry_after": "3"})

    assert settings.retry_after == 3.0
    with pytest.raises(ValueError):
        settings.update({"nope": 1})
    with pytest.raises(ValueError):
        settings.update({"mirid_claim": "sometimes"})
    with pytest.raises(ValueError):
        settings.update({"nic_update_mode": "sometimes"})
    with pytest.raises(ValueError):
        settings.update({"in_use_with_resource": "yes"})


def test_settings_defaults_answer_nic_updates_both_ways_and_omit_in_use_with_resource() -> None:
    settings = Settings()
    settings.update({"nic_update_mode": "async", "in_use_with_resource": "true"})

    assert (Settings().nic_update_mode, Settings().in_use_with_resource) == ("mixed", False)
    assert (settings.nic_update_mode, settings.in_use_with_resource) == ("async", True)
