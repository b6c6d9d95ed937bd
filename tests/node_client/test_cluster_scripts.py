"""The EXPRESSCLUSTER scripts and the Pacemaker OCF agent, run as the cluster would run them."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CLIENT, ROOT, clean_env, write_config
from .fake_azure import CLUSTER_IP, OTHER_NIC, THIS_NIC, FakeServer, State

ECX = ROOT / "node_client" / "expresscluster"
AGENT = ROOT / "node_client" / "ocf" / "azure-secondary-ip"
OCF_ROOT = Path(os.environ.get("OCF_ROOT", "/usr/lib/ocf"))
SHELLFUNCS = OCF_ROOT / "lib" / "heartbeat" / "ocf-shellfuncs"
CLP_ENV = {
    "CLP_EVENT": "FAILOVER",
    "CLP_SERVER": "server02",
    "CLP_GROUPNAME": "failover",
    "CLP_RESOURCENAME": "exec-ip",
}
OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_ARGS, OCF_ERR_UNIMPLEMENTED = 0, 1, 2, 3
OCF_ERR_INSTALLED, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 5, 6, 7


# EXPRESSCLUSTER ----------------------------------------------------------------------------


def ecx(script: str, config: Path, **env: str) -> subprocess.CompletedProcess:
    """Run a script as EXPRESSCLUSTER does: the file itself, CLP_* in the environment."""
    return subprocess.run(
        [str(ECX / script)],
        env=clean_env(**{"IPMOVER": str(CLIENT), "IPMOVER_CONFIG": str(config), **env}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_sh_acquires_with_the_cluster_context(config: Path, azure: State) -> None:
    result = ecx("start.sh", config, **CLP_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "start.sh: acquire (event FAILOVER, server server02, group failover" in result.stdout
    assert f"add_ip_config {THIS_NIC} succeeded" in result.stdout
    assert result.stdout.rstrip().endswith(f"{CLUSTER_IP} is on this VM per instance metadata")
    (move,) = azure.moves.values()
    assert move.action == "acquire"
    assert move.context == {
        "event": "FAILOVER",
        "server": "server02",
        "group": "failover",
        "resource": "exec-ip",
    }


def test_stop_sh_releases_with_the_cluster_context(config: Path, azure: State) -> None:
    azure.holder, azure.visible = THIS_NIC, {CLUSTER_IP: 0.0}
    result = ecx("stop.sh", config, **{**CLP_ENV, "CLP_EVENT": "STOP"})
    assert result.returncode == 0, result.stdout + result.stderr
    (move,) = azure.moves.values()
    assert (move.action, move.context["event"]) == ("release", "STOP")
    assert azure.holder is None


def test_monitor_sh_follows_the_ip(config: Path, azure: State) -> None:
    result = ecx("monitor.sh", config)
    assert result.returncode == 7
    assert "not on this server" in result.stdout
    assert ecx("start.sh", config).returncode == 0
    result = ecx("monitor.sh", config)
    assert (result.returncode, result.stdout) == (0, "")
    assert ecx("stop.sh", config).returncode == 0
    assert ecx("monitor.sh", config).returncode == 7
    assert azure.requests_to("/api/v1/ips/", "POST")  # start/stop did; monitor never does


def test_monitor_sh_that_cannot_tell_fails(
    tmp_path: Path, server: FakeServer, azure: State
) -> None:
    azure.network_script = [400]
    config = write_config(tmp_path / "c.conf", server.url)
    result = ecx("monitor.sh", config)
    assert result.returncode == 8
    assert "cannot tell (exit code 8)" in result.stdout


@pytest.mark.parametrize(("script", "action"), [("start.sh", "acquire"), ("stop.sh", "release")])
def test_a_failing_move_fails_the_script_with_the_reason(
    config: Path, azure: State, script: str, action: str
) -> None:
    azure.member = False
    result = ecx(script, config, **CLP_ENV)
    assert result.returncode == 11
    assert "403 not_a_member" in result.stdout
    assert f"{script}: {action} failed with exit code 11" in result.stdout


def test_break_glass_starts_when_the_ip_was_put_here_by_hand(
    tmp_path: Path, config: Path, azure: State
) -> None:
    # The mover refuses (here: 403); the operator moved the IP to this VM with az.
    azure.member = False
    azure.holder, azure.visible = THIS_NIC, {CLUSTER_IP: 0.0}
    glass = tmp_path / "break-glass"

    without = ecx("start.sh", config, **CLP_ENV, IPMOVER_BREAK_GLASS_FILE=str(glass))
    glass.touch()
    broken = ecx("start.sh", config, **CLP_ENV, IPMOVER_BREAK_GLASS_FILE=str(glass))

    assert without.returncode == 11
    assert broken.returncode == 0, broken.stdout + broken.stderr
    assert "BREAK GLASS" in broken.stdout and "acquire failed with exit code 11" in broken.stdout


def test_break_glass_never_starts_where_the_ip_is_not(
    tmp_path: Path, config: Path, azure: State
) -> None:
    azure.member = False
    azure.holder = OTHER_NIC
    glass = tmp_path / "break-glass"
    glass.touch()

    result = ecx("start.sh", config, **CLP_ENV, IPMOVER_BREAK_GLASS_FILE=str(glass))

    assert result.returncode == 11
    assert "BREAK GLASS" not in result.stdout


def test_break_glass_stops_only_when_the_ip_is_surely_gone(
    tmp_path: Path, server: FakeServer, config: Path, azure: State
) -> None:
    azure.member = False
    glass = tmp_path / "break-glass"
    glass.touch()
    env = {**CLP_ENV, "CLP_EVENT": "STOP", "IPMOVER_BREAK_GLASS_FILE": str(glass)}

    gone = ecx("stop.sh", config, **env)
    azure.holder, azure.visible = THIS_NIC, {CLUSTER_IP: 0.0}
    still_here = ecx("stop.sh", config, **env)
    azure.holder, azure.visible = None, {}
    azure.network_script = [400]  # instance metadata cannot tell
    unknown = ecx("stop.sh", config, **env)

    assert gone.returncode == 0 and "stop.sh: BREAK GLASS" in gone.stdout
    assert still_here.returncode == 11
    assert unknown.returncode == 11


def test_scripts_without_the_client_fail_clearly(config: Path, azure: State) -> None:
    for script in ("start.sh", "stop.sh", "monitor.sh"):
        result = ecx(script, config, IPMOVER="/nonexistent/ipmover")
        assert result.returncode == 1
        assert "not installed at /nonexistent/ipmover" in result.stdout


def test_scripts_run_under_dash_and_bash(config: Path, azure: State) -> None:
    for shell in ("dash", "bash"):
        if shutil.which(shell) is None:
            continue
        result = subprocess.run(
            [shell, str(ECX / "start.sh")],
            env=clean_env(IPMOVER=str(CLIENT), IPMOVER_CONFIG=str(config)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (shell, result.stdout, result.stderr)
        azure.holder = OTHER_NIC


def test_shell_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    scripts = [*sorted(ECX.glob("*.sh")), AGENT]
    result = subprocess.run(
        ["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


# Pacemaker OCF agent ------------------------------------------------------------------------

needs_ocf = pytest.mark.skipif(
    not SHELLFUNCS.exists(), reason="resource-agents (ocf-shellfuncs) is not installed"
)


def ocf(action: str, config: Path | None, interval: int = 10000, **params: str):
    """Run the agent as pacemaker-execd does: OCF_ROOT, OCF_RESKEY_*, the action."""
    env = clean_env(OCF_ROOT=str(OCF_ROOT), OCF_RESOURCE_INSTANCE="vip")
    env["OCF_RESKEY_CRM_meta_interval"] = str(interval)
    env["OCF_RESKEY_client"] = str(CLIENT)
    env["OCF_RESKEY_ip"] = CLUSTER_IP
    if config is not None:
        env["OCF_RESKEY_config"] = str(config)
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    return subprocess.run(
        [str(AGENT), action], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def world_readable_agent() -> Iterator[Path]:
    """A copy of the agent in a directory every user can enter: ocf-tester runs meta-data as
    user nobody, and a checkout may sit below a private directory (e.g. /root)."""
    directory = Path(tempfile.mkdtemp(prefix="ocf-agent-", dir="/tmp"))
    directory.chmod(0o755)
    agent = directory / AGENT.name
    shutil.copy2(AGENT, agent)
    agent.chmod(0o755)
    yield agent
    shutil.rmtree(directory)


@needs_ocf
def test_ocf_tester_passes(config: Path, azure: State, world_readable_agent: Path) -> None:
    if shutil.which("ocf-tester") is None:
        pytest.skip("ocf-tester is not installed (Debian package resource-agents)")
    result = subprocess.run(
        [
            "ocf-tester",
            "-n",
            "vip",
            "-o",
            f"ip={CLUSTER_IP}",
            "-o",
            f"config={config}",
            "-o",
            f"client={CLIENT}",
            str(world_readable_agent),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed all tests" in result.stdout
    actions = [(m.action, m.context["event"]) for m in azure.moves.values()]
    assert actions == [("acquire", "START"), ("release", "STOP")] * 2


@needs_ocf
def test_meta_data_is_valid_against_the_ra_dtd() -> None:
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint is not installed (Debian package libxml2-utils)")
    metadata = ocf("meta-data", None)
    assert metadata.returncode == 0
    dtd_dir = Path("/usr/share/resource-agents")
    result = subprocess.run(
        ["xmllint", "--noout", "--valid", "-"],
        input=metadata.stdout,
        cwd=dtd_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in ("ip", "url", "audience", "config", "client", "wait_imds"):
        assert f'<parameter name="{name}"' in metadata.stdout
    for action in ("start", "stop", "monitor", "validate-all", "meta-data"):
        assert re.search(rf'<action name="{action}" +timeout="\d+s"', metadata.stdout)


@needs_ocf
@pytest.mark.parametrize("action", ["notify", "promote", "reload", "migrate_to", "bogus"])
def test_unknown_actions_are_unimplemented(action: str) -> None:
    assert ocf(action, None).returncode == OCF_ERR_UNIMPLEMENTED


@needs_ocf
def test_monitor_maps_the_client_onto_ocf_codes(config: Path, azure: State) -> None:
    result = ocf("monitor", config, interval=0)  # a probe of a stopped resource: quiet
    assert (result.returncode, result.stdout, result.stderr) == (OCF_NOT_RUNNING, "", "")
    azure.visible[CLUSTER_IP] = 0.0
    assert ocf("monitor", config).returncode == OCF_SUCCESS
    azure.network_script = [400]
    result = ocf("monitor", config)
    assert result.returncode == OCF_ERR_GENERIC
    assert "ocf-exit-reason:" in result.stderr
    assert "instance metadata: 400" in result.stderr


@needs_ocf
def test_start_passes_a_client_timeout_below_the_operation_timeout(
    config: Path, azure: State
) -> None:
    before = dt.datetime.now(dt.UTC)
    result = ocf("start", config, CRM_meta_timeout="60000")
    assert result.returncode == OCF_SUCCESS, result.stderr
    (post,) = azure.requests_to("/api/v1/ips/", "POST")
    deadline = dt.datetime.fromisoformat(post["body"]["deadline"].replace("Z", "+00:00"))
    # 60 s less a 10 % margin: the client gives up (and says why) before Pacemaker kills it.
    assert before + dt.timedelta(seconds=52) <= deadline <= before + dt.timedelta(seconds=55)


@needs_ocf
def test_a_failed_start_gives_the_clients_reason(config: Path, azure: State) -> None:
    azure.fail_step = "add_ip_config"
    result = ocf("start", config)
    assert result.returncode == OCF_ERR_GENERIC
    assert re.search(
        r"ocf-exit-reason:ipmover: acquire 10\.5\.0\.110 failed: the move failed at step "
        r"add_ip_config",
        result.stderr,
    )


@needs_ocf
def test_a_stop_that_cannot_release_fails(config: Path, azure: State) -> None:
    azure.visible[CLUSTER_IP] = 0.0
    azure.holder = THIS_NIC
    azure.member = False
    result = ocf("stop", config)
    assert result.returncode == OCF_ERR_GENERIC
    assert "403 not_a_member" in result.stderr


@needs_ocf
def test_validation_codes(tmp_path: Path, config: Path, server: FakeServer) -> None:
    assert ocf("validate-all", config).returncode == OCF_SUCCESS
    assert ocf("validate-all", config, ip="").returncode == OCF_ERR_CONFIGURED
    assert ocf("validate-all", config, ip="10.5.0.999").returncode == OCF_ERR_CONFIGURED
    missing = ocf("validate-all", config, client="/nonexistent/ipmover")
    assert missing.returncode == OCF_ERR_INSTALLED
    assert ocf("monitor", config, interval=0, client="/nonexistent").returncode == OCF_NOT_RUNNING
    no_url = write_config(tmp_path / "no-url.conf", server.url, url=None)
    result = ocf("validate-all", no_url)
    assert result.returncode == OCF_ERR_CONFIGURED
    assert "missing setting(s): url" in result.stderr
    assert ocf("validate-all", no_url, url=server.url).returncode == OCF_SUCCESS
    assert ocf("validate-all", tmp_path / "absent.conf").returncode == OCF_ERR_ARGS
    assert ocf("validate-all", config, wait_imds="perhaps").returncode == OCF_ERR_CONFIGURED
