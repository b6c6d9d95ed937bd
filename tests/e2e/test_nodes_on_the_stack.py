"""The node side against the real thing: client, EXPRESSCLUSTER scripts and OCF agent as
processes, talking to the local host running the mover and to the local Azure's IMDS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.azure.topology import seed_topology_dict
from emulator.launch import REPO_ROOT
from emulator.stack import AUDIENCE, LocalStack, start_stack
from tests.mover.conftest import FAST_AZURE, FAST_LIMITS, FAST_POLLS, NIC, Mover

IP = "10.5.0.110"
CLIENT = REPO_ROOT / "node_client" / "ipmover.py"
SCRIPTS = REPO_ROOT / "node_client" / "expresscluster"
AGENT = REPO_ROOT / "node_client" / "ocf" / "azure-secondary-ip"


def _topology_with_an_outsider() -> dict:
    """The article's topology plus server03: a VM of the resource group, in no cluster."""
    topology = seed_topology_dict()
    server = next(vm for vm in topology["vms"] if vm["name"] == "server02")
    outsider = json.loads(json.dumps(server))
    outsider.update(name="server03", principal_id=None, vm_id=None)
    outsider.pop("principal_id")
    outsider.pop("vm_id")
    nic = outsider["nics"][0]
    nic["name"] = "server03-nic"
    nic.pop("mac", None)
    nic["ip_configurations"][0]["private_ip"] = "10.5.0.103"
    nic["ip_configurations"][0].pop("public_ip_id", None)
    topology["vms"].append(outsider)
    return topology


def start_outsider_stack(state: Path, limits: dict[str, Any] | None = None) -> LocalStack:
    """The mover on the local Azure, with server03 outside the cluster."""
    topology = state / "topology.json"
    topology.write_text(json.dumps(_topology_with_an_outsider()))
    # Every setting comes from IPMOVER_* variables; the file only has to exist.
    (state / "ipmover.conf").write_text("[ipmover]\n")
    return start_stack(
        state,
        topology=str(topology),
        azure_args=FAST_AZURE,
        limits=limits or FAST_LIMITS,
        **FAST_POLLS,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The mover on the local Azure, with server03 outside the cluster."""
    with start_outsider_stack(tmp_path_factory.mktemp("nodes")) as running:
        yield running


@pytest.fixture
def mover(stack: LocalStack) -> Mover:
    """ARM back at the start, no faults."""
    stack.control.reset()
    return Mover(stack)


def node_env(stack: LocalStack, vm: str, **settings: str) -> dict[str, str]:
    """The client on ``vm`` configured for this stack (every setting from IPMOVER_*)."""
    return stack.node_env(vm, stack.state_dir / "ipmover.conf", **{"timeout": "60", **settings})


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a node-side program, as the cluster software would."""
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_articles_check_through_the_expresscluster_scripts(mover: Mover) -> None:
    stack = mover.stack

    def script(name: str, vm: str, event: str) -> subprocess.CompletedProcess[str]:
        env = node_env(stack, vm)
        env.update(
            CLP_EVENT=event, CLP_SERVER=vm, CLP_GROUPNAME="failover", CLP_RESOURCENAME="exec-ip"
        )
        return run(["sh", str(SCRIPTS / name)], env)

    started = script("start.sh", "server01", "START")
    assert started.returncode == 0, started.stdout + started.stderr
    assert mover.holders() == [NIC["server01"]]
    assert "is on this VM per instance metadata" in started.stdout
    assert script("monitor.sh", "server01", "").returncode == 0
    assert script("monitor.sh", "server02", "").returncode != 0

    failover = script("start.sh", "server02", "FAILOVER")
    assert failover.returncode == 0, failover.stdout + failover.stderr
    assert mover.holders() == [NIC["server02"]]
    assert script("monitor.sh", "server02", "").returncode == 0
    assert script("monitor.sh", "server01", "").returncode != 0, "gone from server01's metadata"

    history = mover.get(f"ips/{IP}/history", "server02").json()["records"]
    assert history[0]["context"] == {
        "event": "FAILOVER",
        "server": "server02",
        "group": "failover",
        "resource": "exec-ip",
    }
    stopped = script("stop.sh", "server02", "STOP")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert mover.holders() == []


def test_a_vm_without_identity_exits_9(mover: Mover) -> None:
    mover.stack.control.set_identity("server01", False)
    try:
        result = run([str(CLIENT), "acquire"], node_env(mover.stack, "server01"))
    finally:
        mover.stack.control.set_identity("server01", True)
    assert result.returncode == 9, result.stderr
    assert mover.holders() == []


def test_an_unreachable_function_exits_10(mover: Mover) -> None:
    env = node_env(mover.stack, "server01", url="http://127.0.0.1:9", timeout="5")
    result = run([str(CLIENT), "acquire"], env)
    assert result.returncode == 10, result.stderr


def test_a_vm_outside_the_cluster_is_refused_with_11(mover: Mover) -> None:
    result = run([str(CLIENT), "acquire"], node_env(mover.stack, "server03"))
    assert result.returncode == 11, result.stderr
    assert "not_a_member" in result.stderr or "not a member" in result.stderr
    assert mover.holders() == []


def test_a_token_for_another_audience_is_refused_with_11(mover: Mover) -> None:
    env = node_env(mover.stack, "server01", audience="api://some-other-app")
    assert run([str(CLIENT), "acquire"], env).returncode == 11


def test_an_ip_of_no_cluster_exits_12(mover: Mover) -> None:
    env = node_env(mover.stack, "server01", ip="10.5.0.111")
    result = run([str(CLIENT), "acquire"], env)
    assert result.returncode == 12, result.stderr


def test_a_failed_move_exits_13_with_arms_reason(mover: Mover) -> None:
    mover.stack.control.fail_next(
        1, method="PUT", path=NIC["server01"], status=403, code="AuthorizationFailed"
    )
    result = run([str(CLIENT), "acquire"], node_env(mover.stack, "server01"))
    assert result.returncode == 13, result.stdout + result.stderr
    assert "AuthorizationFailed" in result.stderr


def test_a_deadline_that_passes_in_the_queue_exits_14(mover: Mover) -> None:
    control = mover.stack.control
    control.update_settings(nic_update_seconds=4.0)
    slow = mover.post("acquire", "server01")
    control.wait_for(
        lambda: (
            mover.get(f"requests/{slow.json()['requestId']}", "server01").json()["status"]
            == "running"
        )
    )
    result = run([str(CLIENT), "acquire"], node_env(mover.stack, "server02", timeout="1"))
    assert result.returncode == 14, result.stdout + result.stderr
    assert mover.wait(slow.json()["requestId"], "server01")["status"] == "succeeded"
    assert mover.holders() == [NIC["server01"]], "the timed-out request must not run later"


def test_imds_errors_are_ridden_out(mover: Mover) -> None:
    control = mover.stack.control
    control.imds_fail_next(2, 410, vm="server01", path="identity")
    control.imds_fail_next(1, 500, vm="server01", path="identity")
    result = run([str(CLIENT), "acquire"], node_env(mover.stack, "server01"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert mover.holders() == [NIC["server01"]]


@pytest.mark.skipif(shutil.which("ocf-tester") is None, reason="needs Debian's resource-agents")
def test_the_ocf_agent_passes_ocf_tester_against_the_stack(mover: Mover) -> None:
    stack = mover.stack
    directory = Path(tempfile.mkdtemp(prefix="ocf-e2e-", dir="/tmp"))
    try:
        # ocf-tester runs meta-data as user nobody: everything it reads must be readable.
        directory.chmod(0o755)
        agent, client = directory / AGENT.name, directory / "ipmover"
        shutil.copy2(AGENT, agent)
        shutil.copy2(CLIENT, client)
        config = directory / "ipmover.conf"
        config.write_text(
            "[ipmover]\n"
            f"url = {stack.host.info['url']}\n"
            f"audience = {AUDIENCE}\n"
            f"ip = {IP}\n"
            f"imds_url = {stack.ready.imds['server01']}\n"
            "timeout = 60\n"
        )
        for path in (agent, client, config):
            path.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IPMOVER", "OCF_"))}
        result = run(
            [
                "ocf-tester",
                "-n",
                "vip",
                "-o",
                f"ip={IP}",
                "-o",
                f"config={config}",
                "-o",
                f"client={client}",
                str(agent),
            ],
            env,
        )
    finally:
        shutil.rmtree(directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed all tests" in result.stdout
    events = [
        r["context"].get("event")
        for r in mover.get(f"ips/{IP}/history?limit=10", "server01").json()["records"]
    ]
    assert "START" in events and "STOP" in events
