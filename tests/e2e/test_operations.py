"""What operators and the cluster see on the real stack: ``ipmover doctor`` with each failure
class, split brain in the audit and on the losing node's monitor, an operator's move from
the command line with the operator's own token.

The client runs as a process against the local host (Microsoft's worker running the mover)
and the local Azure's IMDS and token issuer, as in test_nodes_on_the_stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.launch import REPO_ROOT, start_service
from emulator.stack import AUDIENCE, LocalStack
from tests.mover.conftest import FAST_LIMITS, NIC, Mover

from .test_nodes_on_the_stack import start_outsider_stack

IP = "10.5.0.110"
CLIENT = REPO_ROOT / "node_client" / "ipmover.py"
SCRIPTS = REPO_ROOT / "node_client" / "expresscluster"
SKEWED = Path(__file__).with_name("skewed_clock.py")
# Short enough that a test can wait it out; both nodes starting at once take about 2 s here.
WINDOW = 20.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The mover on the local Azure, with server03 outside the cluster."""
    state = tmp_path_factory.mktemp("operations")
    limits = {**FAST_LIMITS, "splitBrainWindowSeconds": WINDOW}
    with start_outsider_stack(state, limits) as running:
        yield running


@pytest.fixture
def mover(stack: LocalStack) -> Iterator[Mover]:
    """ARM and IMDS back at the start, no faults."""
    stack.control.reset()
    yield Mover(stack)
    stack.control.reset()


def node_env(stack: LocalStack, vm: str, **settings: str) -> dict[str, str]:
    """The client on ``vm``, every setting from IPMOVER_* (retries kept short)."""
    defaults = {"timeout": "60", "retry_backoff": "0.05", "poll_interval": "0.1"}
    return stack.node_env(vm, stack.state_dir / "ipmover.conf", **{**defaults, **settings})


def client(
    stack: LocalStack, vm: str, *args: str, skew: float | None = None, stdin: str | None = None,
    **settings: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``ipmover ARGS`` on ``vm`` (with its wall clock ``skew`` seconds off)."""
    command = [sys.executable, str(CLIENT), *args]
    if skew is not None:
        command = [sys.executable, str(SKEWED), str(skew), str(CLIENT), *args]
    return subprocess.run(
        command,
        env=node_env(stack, vm, **settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lines_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """doctor's lines by check name: {"imds": "ok   imds     instance metadata ..."}."""
    found = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("ok", "FAIL", "skip"):
            found[words[1]] = line
    return found


def assert_no_token_in(result: subprocess.CompletedProcess[str]) -> None:
    # Every token the issuer signs is a JWT starting with the base64 of '{"'.
    assert "eyJ" not in result.stdout + result.stderr


# -- doctor ------------------------------------------------------------------------------------


def test_doctor_passes_every_check_on_a_member(mover: Mover) -> None:
    result = client(mover.stack, "server01", "doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    checks = lines_of(result)
    assert list(checks) == ["config", "imds", "token", "function", "clock", "claims", "read"]
    assert all(line.startswith("ok ") for line in checks.values()), result.stdout
    oid = mover.stack.config["clusters"][0]["members"][0]["principalId"]
    assert f"oid {oid}" in checks["claims"] and "app-only" in checks["claims"]
    assert "cluster cluster1" in checks["read"] and "ip-config ipconfig2" in checks["read"]
    assert "doctor: all 7 checks passed" in result.stdout
    assert_no_token_in(result)
    assert mover.writes_since(0) == [], "doctor must not change anything"


def test_doctor_reports_a_bad_configuration_with_6(mover: Mover) -> None:
    result = client(mover.stack, "server01", "doctor", timeout="0")

    assert result.returncode == 6, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["config"].startswith("FAIL") and "timeout" in checks["config"]
    assert all(checks[name].startswith("skip") for name in ("imds", "token", "read"))
    assert "doctor failed: timeout" in result.stderr


def test_doctor_reports_imds_unreachable_with_8(mover: Mover) -> None:
    result = client(mover.stack, "server01", "doctor", imds_url="http://127.0.0.1:9")

    assert result.returncode == 8, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["imds"].startswith("FAIL") and "unreachable" in checks["imds"]
    assert checks["token"].startswith("FAIL")
    assert checks["function"].startswith("ok"), "the function is checked all the same"
    assert checks["claims"].startswith("skip") and checks["read"].startswith("skip")


def test_doctor_reports_a_vm_without_identity_with_9(mover: Mover) -> None:
    mover.stack.control.set_identity("server01", False)

    result = client(mover.stack, "server01", "doctor")

    assert result.returncode == 9, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["imds"].startswith("ok")
    assert checks["token"].startswith("FAIL") and "no managed identity" in checks["token"]


def test_doctor_reports_a_token_for_another_audience_with_11(mover: Mover) -> None:
    result = client(mover.stack, "server01", "doctor", audience="api://some-other-app")

    assert result.returncode == 11, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["claims"].startswith("FAIL")
    assert "api://some-other-app" in checks["claims"] and AUDIENCE in checks["claims"]
    assert checks["read"].startswith("FAIL") and "401" in checks["read"]


def test_doctor_reports_a_token_that_is_not_app_only_with_11(mover: Mover) -> None:
    # IMDS handing out a token that looks delegated: the function never takes it for a VM.
    mover.stack.control.set_identity(
        "server01", True, claims={"scp": "user_impersonation", "idtyp": None}
    )

    result = client(mover.stack, "server01", "doctor")

    assert result.returncode == 11, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["claims"].startswith("FAIL") and "not an app-only token" in checks["claims"]
    assert checks["read"].startswith("FAIL") and "not_a_member" in checks["read"]


@pytest.mark.parametrize(("skew", "word"), [(120.0, "ahead of"), (-90.0, "behind")])
def test_doctor_reports_clock_skew_with_16(mover: Mover, skew: float, word: str) -> None:
    result = client(mover.stack, "server01", "doctor", skew=skew)

    assert result.returncode == 16, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["clock"].startswith("FAIL") and word in checks["clock"]
    assert f"{abs(skew):.0f}s" in checks["clock"]
    assert checks["read"].startswith("ok"), "the rest still runs"


def test_a_small_skew_passes(mover: Mover) -> None:
    result = client(mover.stack, "server01", "doctor", skew=3.0)
    assert result.returncode == 0, result.stdout + result.stderr


def test_doctor_reports_an_unreachable_function_with_10(mover: Mover) -> None:
    result = client(mover.stack, "server01", "doctor", url="http://127.0.0.1:9")

    assert result.returncode == 10, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["function"].startswith("FAIL") and "cannot reach" in checks["function"]
    assert checks["clock"].startswith("skip") and checks["read"].startswith("skip")
    assert checks["token"].startswith("ok")


def test_doctor_reports_an_unhealthy_function_with_10(mover: Mover, tmp_path: Path) -> None:
    # A second host whose configuration is broken: /health answers 503 not_configured.
    broken = {"auth": {"tenantId": "nope"}, "clusters": []}
    host = start_service(
        ["host", "--app-dir", str(REPO_ROOT), "--state", str(tmp_path), "--port", "0"],
        log_path=tmp_path / "host.log",
        env={"MOVER_CONFIG": json.dumps(broken)},
    )
    try:
        result = client(mover.stack, "server01", "doctor", url=str(host.info["url"]))
    finally:
        host.stop()

    assert result.returncode == 10, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["function"].startswith("FAIL") and "503 not_configured" in checks["function"]


def test_doctor_reports_a_refused_read_with_11(mover: Mover) -> None:
    result = client(mover.stack, "server03", "doctor")

    assert result.returncode == 11, result.stdout + result.stderr
    checks = lines_of(result)
    assert checks["claims"].startswith("ok"), "a good token, of a VM the function does not know"
    assert checks["read"].startswith("FAIL") and "403 not_a_member" in checks["read"]


def test_doctor_reports_an_ip_of_no_cluster_with_12(mover: Mover) -> None:
    result = client(mover.stack, "server01", "doctor", ip="10.5.0.111")

    assert result.returncode == 12, result.stdout + result.stderr
    assert lines_of(result)["read"].startswith("FAIL") and "unknown_ip" in result.stdout


# -- split brain -------------------------------------------------------------------------------


def test_both_nodes_starting_at_once_is_recorded_and_the_loser_s_monitor_says_so(
    mover: Mover,
) -> None:
    stack = mover.stack
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def start(vm: str) -> None:
        env = node_env(stack, vm)
        env.update(CLP_EVENT="START", CLP_SERVER=vm, CLP_GROUPNAME="failover")
        results[vm] = subprocess.run(
            ["sh", str(SCRIPTS / "start.sh")],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    threads = [threading.Thread(target=start, args=(vm,)) for vm in ("server01", "server02")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {vm: r.returncode for vm, r in results.items()} == {"server01": 0, "server02": 0}
    (winner,) = [vm for vm in NIC if mover.holders() == [NIC[vm]]]
    loser = "server02" if winner == "server01" else "server01"
    record = mover.get(f"ips/{IP}/history", winner).json()["records"][0]
    assert record["caller"]["member"] == winner
    split = record["splitBrain"]
    assert split["tookFrom"] == loser and split["nic"].endswith(NIC[loser])
    assert split["overlapped"] is True and 0 <= split["secondsAfter"] <= WINDOW
    assert split["windowSeconds"] == WINDOW
    assert "possible split brain" in results[winner].stdout

    monitor_env = node_env(stack, loser)
    monitor = subprocess.run(
        ["sh", str(SCRIPTS / "monitor.sh")],
        env=monitor_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert monitor.returncode == 7, monitor.stdout + monitor.stderr
    assert f"{winner} took {IP} from {loser}" in monitor.stdout
    assert "possible split brain" in monitor.stdout

    history = client(stack, loser, "history", "--limit", "3")
    assert history.returncode == 0, history.stderr
    newest = history.stdout.splitlines()[1]
    assert "split-brain? " in newest and f"after {loser} acquired it" in newest


def test_a_planned_switchover_is_no_split_brain(mover: Mover) -> None:
    stack = mover.stack
    assert client(stack, "server01", "acquire").returncode == 0
    assert client(stack, "server01", "release").returncode == 0
    assert client(stack, "server02", "acquire").returncode == 0

    record = mover.get(f"ips/{IP}/history", "server02").json()["records"][0]
    assert record["caller"]["member"] == "server02" and record["splitBrain"] is None
    explain = client(stack, "server01", "status", "--quiet", "--explain")
    assert explain.returncode == 7
    assert explain.stdout.startswith(f"last move of {IP}: acquire by server02")


def test_a_takeover_after_the_window_is_no_split_brain(mover: Mover) -> None:
    stack = mover.stack
    assert client(stack, "server01", "acquire").returncode == 0
    time.sleep(WINDOW + 1)
    assert client(stack, "server02", "acquire", "--context", "event=FAILOVER").returncode == 0
    record = mover.get(f"ips/{IP}/history", "server02").json()["records"][0]
    assert record["fromNics"] and record["splitBrain"] is None


# -- an operator's move ------------------------------------------------------------------------


def _az_output(token: str) -> str:
    """What ``az account get-access-token`` prints."""
    return json.dumps(
        {
            "accessToken": token,
            "expiresOn": "2099-01-01 00:00:00.000000",
            "expires_on": 4070908800,
            "subscription": "00000000-0000-0000-0000-000000000000",
            "tenant": "00000000-0000-0000-0000-000000000000",
            "tokenType": "Bearer",
        }
    )


def test_an_operator_moves_the_ip_with_their_own_token(mover: Mover, tmp_path: Path) -> None:
    token_file = tmp_path / "token.json"
    token_file.write_text(_az_output(mover.operator_token()))
    token_file.chmod(0o600)
    assert client(mover.stack, "server01", "acquire").returncode == 0

    # From an operator's workstation: no IMDS at all.
    result = client(
        mover.stack, "server01", "move", "--target", "server02", "--context", "event=MAINTENANCE",
        token_file=str(token_file), imds_url="http://127.0.0.1:9",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"acquire {IP} to server02 succeeded" in result.stdout
    assert_no_token_in(result)
    mover.assert_only_on("server02")
    record = mover.get(f"ips/{IP}/history", "server02").json()["records"][0]
    assert record["caller"]["byOperator"] is True
    assert record["context"]["event"] == "MAINTENANCE"


def test_an_operator_token_may_come_on_stdin(mover: Mover) -> None:
    result = client(
        mover.stack, "server01", "move", "--target", "server01",
        stdin=mover.operator_token(), token_file="-",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    mover.assert_only_on("server01")


def test_an_operator_without_the_app_role_is_refused_with_11(mover: Mover) -> None:
    result = client(
        mover.stack, "server01", "move", "--target", "server02",
        stdin=mover.operator_token(roles=()), token_file="-",
    )  # fmt: skip
    assert result.returncode == 11, result.stdout + result.stderr
    assert "not_a_member" in result.stderr
    assert mover.holders() == []


def test_an_expired_operator_token_is_refused_before_any_call(mover: Mover) -> None:
    expired = mover.operator_token(exp=int(time.time()) - 60)
    seq = mover.stack.control.last_seq()
    result = client(
        mover.stack, "server01", "move", "--target", "server02", stdin=expired, token_file="-",
        url="http://127.0.0.1:9",
    )  # fmt: skip
    assert result.returncode == 11, result.stdout + result.stderr
    assert "expired" in result.stderr and "az account get-access-token" in result.stderr
    assert mover.writes_since(seq) == []


def test_a_member_may_move_only_to_itself(mover: Mover) -> None:
    # No token file: the VM's own identity, which names another member.
    result = client(mover.stack, "server01", "move", "--target", "server02")
    assert result.returncode == 11, result.stdout + result.stderr
    assert "forbidden" in result.stderr
    assert mover.holders() == []


def test_an_operator_s_dry_run_of_a_sound_cluster_exits_0_and_changes_nothing(
    mover: Mover,
) -> None:
    assert client(mover.stack, "server02", "acquire").returncode == 0
    seq = mover.stack.control.last_seq()

    result = client(
        mover.stack, "server01", "dry-run", "--cluster", "cluster1",
        stdin=mover.operator_token(), token_file="-",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"move   {IP} -> server01: remove ipconfig2 on {NIC['server02']}; " in result.stdout
    assert f"add ipconfig2 to {NIC['server01']}" in result.stdout
    assert f"move   {IP} -> server02: nothing to change" in result.stdout
    assert result.stdout.rstrip().endswith("problems: none")
    assert mover.writes_since(seq) == []
    mover.assert_only_on("server02")


# -- the OCF agent -----------------------------------------------------------------------------

AGENT = REPO_ROOT / "node_client" / "ocf" / "azure-secondary-ip"
OCF_ROOT = Path("/usr/lib/ocf")
needs_ocf = pytest.mark.skipif(
    not (OCF_ROOT / "lib" / "heartbeat" / "ocf-shellfuncs").exists(),
    reason="needs Debian's resource-agents (ocf-shellfuncs)",
)


def ocf(
    stack: LocalStack, vm: str, action: str, tmp_path: Path, interval: int = 10000, **params: str
) -> subprocess.CompletedProcess[str]:
    """The agent on ``vm`` as pacemaker-execd runs it, its settings in a config file."""
    config = tmp_path / f"{vm}.conf"
    config.write_text(
        "[ipmover]\n"
        f"url = {stack.host.info['url']}\n"
        f"audience = {AUDIENCE}\n"
        f"imds_url = {stack.ready.imds[vm]}\n"
        "retry_backoff = 0.05\n"
    )
    env = {k: v for k, v in node_env(stack, vm).items() if not k.startswith("IPMOVER")}
    env.update(OCF_ROOT=str(OCF_ROOT), OCF_RESOURCE_INSTANCE="vip")
    env.update(
        OCF_RESKEY_CRM_meta_interval=str(interval),
        OCF_RESKEY_client=str(CLIENT),
        OCF_RESKEY_ip=IP,
        OCF_RESKEY_config=str(config),
    )
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    return subprocess.run(
        [str(AGENT), action], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@needs_ocf
def test_validate_all_runs_doctor_only_when_asked(mover: Mover, tmp_path: Path) -> None:
    stack = mover.stack
    passed = ocf(stack, "server01", "validate-all", tmp_path, doctor="true")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "doctor: all 7 checks passed" in passed.stderr  # logged line by line

    unreachable = "http://127.0.0.1:9"
    local_only = ocf(stack, "server01", "validate-all", tmp_path, url=unreachable)
    assert local_only.returncode == 0, "without doctor=true validate-all makes no network call"
    failed = ocf(stack, "server01", "validate-all", tmp_path, url=unreachable, doctor="true")
    assert failed.returncode == 1, failed.stdout + failed.stderr  # OCF_ERR_GENERIC
    assert "ocf-exit-reason:" in failed.stderr and "function: cannot reach" in failed.stderr


@needs_ocf
def test_the_losing_node_s_monitor_logs_the_split_brain(mover: Mover, tmp_path: Path) -> None:
    stack = mover.stack
    assert client(stack, "server01", "acquire").returncode == 0
    assert client(stack, "server02", "acquire").returncode == 0  # right after: within WINDOW

    probe = ocf(stack, "server01", "monitor", tmp_path, interval=0)
    monitor = ocf(stack, "server01", "monitor", tmp_path)

    assert probe.returncode == 7 and "split brain" not in probe.stderr, "probes stay quiet"
    assert monitor.returncode == 7, monitor.stdout + monitor.stderr  # OCF_NOT_RUNNING
    assert f"{IP} is gone: server02 took {IP} from server01" in monitor.stderr
    assert "possible split brain" in monitor.stderr
