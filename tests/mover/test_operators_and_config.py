"""Operators act for a named member; a broken configuration is reported, not guessed around."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests

from emulator.launch import REPO_ROOT, start_service
from emulator.stack import AUDIENCE, start_stack
from mover.access import NOT_CONFIGURED

from .conftest import IP, NIC, OPERATOR, OPERATOR_ROLE, Mover


def _operator_token(mover: Mover) -> str:
    return mover.operator_token()


def test_an_operator_moves_the_ip_to_a_named_member(mover: Mover) -> None:
    token = _operator_token(mover)
    r = mover.post("acquire", "server01", token=token, target="server02")
    assert r.status_code == 202, r.text
    record = mover.wait(r.json()["requestId"], "server01", token=token)
    assert record["status"] == "succeeded", record
    assert record["caller"] == {
        "member": "server02",
        "vm": mover.stack.config["clusters"][0]["members"][1]["vmResourceId"],
        "byOperator": True,
    }
    assert mover.holders() == [NIC["server02"]]


def test_an_operator_must_name_the_member(mover: Mover) -> None:
    r = mover.post("acquire", "server01", token=_operator_token(mover))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_an_operator_reads_any_request_and_ip(mover: Mover) -> None:
    request_id = mover.move("acquire", "server01")["requestId"]
    headers = {"Authorization": f"Bearer {_operator_token(mover)}"}
    for path in (f"requests/{request_id}", f"ips/{IP}", f"ips/{IP}/history"):
        r = requests.get(f"{mover.stack.api}/{path}", headers=headers, timeout=10)
        assert r.status_code == 200, (path, r.text)


def test_an_application_with_the_operator_role_is_an_operator(mover: Mover) -> None:
    # An automation account's app-only token (service principal) assigned the app role.
    token = mover.stack.control.token(
        "app", AUDIENCE, claims={"oid": OPERATOR, "sub": OPERATOR}, roles=[OPERATOR_ROLE]
    )

    r = mover.post("acquire", "server01", token=token, target="server02")

    assert r.status_code == 202, r.text
    url = f"{mover.stack.api}/requests/{r.json()['requestId']}"
    headers = {"Authorization": f"Bearer {token}"}
    mover.stack.control.wait_for(
        lambda: requests.get(url, headers=headers, timeout=10).json()["status"] == "succeeded",
        timeout=30,
    )
    assert mover.holders() == [NIC["server02"]]


@pytest.mark.parametrize(
    "roles", [(), ("IpMover.Node",), ("ipmover.operator",)], ids=["no-role", "other", "case"]
)
def test_an_operator_without_the_app_role_is_refused(untouched: Mover, roles) -> None:
    token = untouched.operator_token(roles=roles)
    headers = {"Authorization": f"Bearer {token}"}

    move = untouched.post("acquire", "server01", token=token, target="server02")
    reads = [
        requests.get(f"{untouched.stack.api}/{path}", headers=headers, timeout=10)
        for path in (f"ips/{IP}", f"ips/{IP}/history")
    ]

    assert move.status_code == 403 and move.json()["error"]["code"] == "not_a_member"
    assert [r.status_code for r in reads] == [403, 403]


def test_a_broken_configuration_is_reported_with_every_reason(tmp_path: Path) -> None:
    config = {"auth": {"tenantId": "nope"}, "clusters": [{"name": "c", "members": [], "ips": []}]}
    host = start_service(
        ["host", "--app-dir", str(REPO_ROOT), "--state", str(tmp_path), "--port", "0"],
        log_path=tmp_path / "host.log",
        env={"MOVER_CONFIG": json.dumps(config)},
    )
    try:
        api = f"{host.info['url']}/api/v1"
        health = requests.get(f"{api}/health", timeout=10)
        assert health.status_code == 503
        # Anonymous callers learn that it is broken, not what the configuration holds;
        # the app's log has every reason.
        assert health.json()["error"] == {"code": "not_configured", "message": NOT_CONFIGURED}
        logged = (tmp_path / "host.log").read_text(errors="replace")
        for problem in ("auth.tenantId", "clusters[0].members", "clusters[0].ips"):
            assert problem in logged
        r = requests.post(
            f"{api}/ips/{IP}/acquire", json={"requestId": str(uuid.uuid4())}, timeout=10
        )
        assert r.status_code == 503
        assert r.json()["error"] == {"code": "not_configured", "message": NOT_CONFIGURED}
    finally:
        host.stop()


def test_a_cluster_where_the_app_has_no_role_is_refused_and_only_operators_see_why(
    tmp_path: Path,
) -> None:
    # The template tells the app where its role is assigned (MOVER_ROLE_SCOPES); the
    # cluster's group is not among them, as for a cluster in another subscription.
    elsewhere = "/subscriptions/11111111-2222-4333-8444-555555555555/resourceGroups/Other"
    with start_stack(
        tmp_path, host_settings={"MOVER_ROLE_SCOPES": json.dumps([elsewhere])}
    ) as stack:
        api = stack.api
        operator = stack.control.user_token(AUDIENCE, oid=OPERATOR, roles=[OPERATOR_ROLE])
        not_operator = stack.control.user_token(AUDIENCE, oid=OPERATOR)

        anonymous = requests.get(f"{api}/health", timeout=10)
        plain = requests.get(
            f"{api}/health", headers={"Authorization": f"Bearer {not_operator}"}, timeout=10
        )
        detailed = requests.get(
            f"{api}/health", headers={"Authorization": f"Bearer {operator}"}, timeout=10
        )
        move = requests.post(
            f"{api}/ips/{IP}/acquire",
            json={"requestId": str(uuid.uuid4())},
            headers={"Authorization": f"Bearer {stack.vm_token('server01')}"},
            timeout=10,
        )

        for r in (anonymous, plain, move):
            assert r.status_code == 503
            assert r.json()["error"] == {"code": "not_configured", "message": NOT_CONFIGURED}
        assert detailed.status_code == 503
        message = detailed.json()["error"]["message"]
        group = stack.config["clusters"][0]["resourceGroup"].lower()
        assert "the app's role is not assigned on" in message and group in message
        assert [r for r in stack.control.requests() if r.method == "PUT"] == []


def _held_by_a_detached_nic(mover: Mover) -> dict:
    """The IP on server02's NIC, which is detached from its VM (so on no member's NIC)."""
    assert mover.move("acquire", "server02")["status"] == "succeeded"
    control = mover.stack.control
    nic = control.nic(NIC["server02"])
    nic["properties"].pop("virtualMachine", None)
    control.set_nic(NIC["server02"], nic)
    return nic


def test_a_member_never_takes_the_ip_from_a_nic_that_is_not_a_members(mover: Mover) -> None:
    held = _held_by_a_detached_nic(mover)
    seq = mover.stack.control.last_seq()

    record = mover.move("acquire", "server01")

    assert record["status"] == "failed", record
    assert record["error"]["code"] == "held_by_non_member"
    assert held["id"] in record["error"]["message"]
    assert mover.writes_since(seq) == []
    assert mover.holders() == [NIC["server02"]]


def test_an_operator_may_force_it(mover: Mover) -> None:
    _held_by_a_detached_nic(mover)
    token = _operator_token(mover)

    r = mover.post("acquire", "server01", token=token, target="server01", force=True)

    assert r.status_code == 202, r.text
    assert mover.wait(r.json()["requestId"], "server01", token=token)["status"] == "succeeded"
    mover.assert_only_on("server01")


def test_a_member_may_not_force(mover: Mover) -> None:
    r = mover.post("acquire", "server01", force=True)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
