"""The operators' dry run on the stack: members found or not, access, what each move would
change (the mover's own reads and plans), and nothing changed in ARM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.stack import LocalStack, start_stack

from .conftest import FAST_AZURE, FAST_LIMITS, FAST_POLLS, IP, NIC, Mover

CLUSTER = "cluster1"
GHOST_VM = "server09"  # configured, but no such VM in the resource group
LOST_NIC_MEMBER = "server08"  # configured with a nicId that does not exist


@pytest.fixture(scope="module")
def dry_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The seed stack, whose cluster also lists a member without a VM and one whose
    configured NIC is gone (the host restarted on that configuration)."""
    with start_stack(
        tmp_path_factory.mktemp("dry-run"),
        azure_args=FAST_AZURE,
        limits=FAST_LIMITS,
        **FAST_POLLS,
    ) as running:
        config = running.config
        cluster = config["clusters"][0]
        base = cluster["members"][0]["vmResourceId"].rsplit("/providers/", 1)[0]
        vms = f"{base}/providers/Microsoft.Compute/virtualMachines"
        cluster["members"] += [
            {
                "name": GHOST_VM,
                "vmResourceId": f"{vms}/{GHOST_VM}",
                "principalId": "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
            },
            {
                "name": LOST_NIC_MEMBER,
                "vmResourceId": f"{vms}/{LOST_NIC_MEMBER}",
                "principalId": "8a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
                "nicId": f"{base}/providers/Microsoft.Network/networkInterfaces/gone-nic",
            },
        ]
        running.config_path.write_text(json.dumps(config, indent=2))
        running.restart_host(kill=False)
        yield running


@pytest.fixture
def mover(dry_stack: LocalStack) -> Mover:
    dry_stack.control.reset()
    return Mover(dry_stack)


def dry_run(mover: Mover, token: str | None = None, cluster: str = CLUSTER) -> requests.Response:
    return mover.http.get(
        f"{mover.stack.api}/clusters/{cluster}/dry-run",
        headers={"Authorization": f"Bearer {token or mover.operator_token()}"},
        timeout=60,
    )


def arm_state(mover: Mover) -> list[tuple[str, str, str]]:
    """Every NIC's name, etag and provisioningState: any write would change one."""
    return sorted(
        (n["name"], n["etag"], n["properties"]["provisioningState"])
        for n in mover.stack.control.nics()
    )


def add_ip_config(mover: Mover, vm: str, name: str, address: str) -> None:
    """Give ``vm``'s NIC one more ip-configuration, as someone in the portal would."""
    control = mover.stack.control
    nic = control.nic(NIC[vm])
    first = nic["properties"]["ipConfigurations"][0]
    config = json.loads(json.dumps(first))
    config["name"] = name
    config["id"] = first["id"].rsplit("/", 1)[0] + "/" + name
    config["properties"].update(
        privateIPAddress=address, primary=False, privateIPAllocationMethod="Static"
    )
    config["properties"].pop("publicIPAddress", None)
    nic["properties"]["ipConfigurations"].append(config)
    control.set_nic(NIC[vm], nic)
    control.wait_until_settled(NIC[vm])


def moves_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (ip,) = report["ips"]
    return {m["to"]: m for m in ip["moves"]}


def test_the_dry_run_reports_members_access_and_each_move_and_changes_nothing(
    mover: Mover,
) -> None:
    # A move would fail now (it reads every member, and two cannot be read): put the IP
    # on server01's NIC by hand.
    add_ip_config(mover, "server01", "ipconfig2", IP)
    before, seq = arm_state(mover), mover.stack.control.last_seq()

    r = dry_run(mover)

    assert r.status_code == 200, r.text
    report = r.json()
    members = {m["name"]: m for m in report["members"]}
    assert [n["name"] for n in members["server01"]["nics"]] == [NIC["server01"]]
    assert [n["name"] for n in members["server02"]["nics"]] == [NIC["server02"]]
    assert members["server01"]["error"] is None
    assert "NotFound" in members[GHOST_VM]["error"]["code"], members[GHOST_VM]
    assert members[LOST_NIC_MEMBER]["error"]["code"] == "nic_not_found"
    access = {a["permission"]: a for a in report["access"]}
    assert access["Microsoft.Network/networkInterfaces/read"]["ok"] is True
    assert access["Microsoft.Compute/virtualMachines/read"]["ok"] is True
    write = access["Microsoft.Network/networkInterfaces/write"]
    assert write["checked"] is False and "only a write" in write["how"]
    join = access["Microsoft.Network/virtualNetworks/subnets/join/action"]
    assert join["checked"] is False

    (ip,) = report["ips"]
    assert ip["address"] == IP and [h["member"] for h in ip["holders"]] == ["server01"]
    moves = moves_of(report)
    assert moves["server01"]["changes"] == []
    assert moves["server01"]["error"]["code"] == "member_unreadable"
    assert GHOST_VM in moves["server01"]["error"]["message"]
    assert [(c["kind"], c["nic"].rsplit("/", 1)[-1]) for c in moves["server02"]["changes"]] == [
        ("remove", NIC["server01"]),
        ("add", NIC["server02"]),
    ]
    remove, add = moves["server02"]["changes"]
    assert remove["ipConfigs"] == ["ipconfig2"] and add["ipConfig"] == "ipconfig2"
    assert add["subnet"].endswith("/subnets/default") or "/subnets/" in add["subnet"]
    assert moves[GHOST_VM]["error"]["code"] == "member_unreadable"
    assert report["ok"] is False
    assert any(p.startswith(f"member {GHOST_VM}") for p in report["problems"])

    assert mover.writes_since(seq) == []
    assert arm_state(mover) == before
    mover.assert_only_on("server01")


def test_an_ip_config_name_taken_on_a_member_s_nic_is_reported(mover: Mover) -> None:
    control = mover.stack.control
    add_ip_config(mover, "server02", "ipconfig2", "10.5.0.120")
    before, seq = arm_state(mover), control.last_seq()

    report = dry_run(mover).json()

    (ip,) = report["ips"]
    assert [(c["nic"].rsplit("/", 1)[-1], c["address"]) for c in ip["nameClashes"]] == [
        (NIC["server02"], "10.5.0.120")
    ]
    moves = moves_of(report)
    # Every move would fail on the unreadable members first; this one also on the name.
    assert [e["code"] for e in moves["server02"]["errors"]] == [
        "member_unreadable",
        "ip_config_name_taken",
    ]
    assert moves["server02"]["changes"] == []
    assert [c["kind"] for c in moves["server01"]["changes"]] == ["add"]
    assert any("already has an ip-configuration named ipconfig2" in p for p in report["problems"])
    assert mover.writes_since(seq) == [] and arm_state(mover) == before


def test_only_operators_may_dry_run(mover: Mover) -> None:
    seq = mover.stack.control.last_seq()
    as_member = dry_run(mover, token=mover.token("server01"))
    without_role = dry_run(mover, token=mover.operator_token(roles=()))
    anonymous = mover.http.get(f"{mover.stack.api}/clusters/{CLUSTER}/dry-run", timeout=30)
    unknown = dry_run(mover, cluster="no-such-cluster")

    assert as_member.status_code == 403 and as_member.json()["error"]["code"] == "forbidden"
    assert without_role.status_code == 403
    assert anonymous.status_code == 401
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_cluster"
    assert mover.stack.control.requests(since=seq) == [], "a refused dry run reads nothing"


def test_the_cli_prints_the_dry_run(mover: Mover, tmp_path: Path) -> None:
    import subprocess
    import sys

    from emulator.stack import NODE_CLIENT

    env = mover.stack.node_env("server01", tmp_path / "absent.conf", timeout="60")
    env.pop("IPMOVER_CONFIG")
    env["IPMOVER_TOKEN_FILE"] = "-"
    result = subprocess.run(
        [sys.executable, str(NODE_CLIENT), "dry-run", "--cluster", CLUSTER],
        env=env, input=mover.operator_token(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip

    assert result.returncode == 13, result.stdout + result.stderr  # the two broken members
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"move   {IP} -> server01"))
    assert "would fail: member_unreadable" in line, line
    assert f"(then: add ipconfig2 to {NIC['server01']})" in line, line
    assert f"member {GHOST_VM}" in result.stdout and "FAIL" in result.stdout
    assert "access not checked Microsoft.Network/networkInterfaces/write" in result.stdout
    assert "eyJ" not in result.stdout + result.stderr
