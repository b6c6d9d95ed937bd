"""acquire / release through the real client process against the fake IMDS + mover API."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from .conftest import CLIENT, CLIENT_PYTHON, Runner, clean_env, write_config
from .fake_azure import CLUSTER_IP, OTHER_NIC, THIS_NIC, FakeServer, Fault, State

LINE = re.compile(r"^\[ *\d+\.\d\ds\] \S")
CLP_ENV = {
    "CLP_EVENT": "FAILOVER",
    "CLP_SERVER": "server02",
    "CLP_GROUPNAME": "failover",
    "CLP_RESOURCENAME": "exec-ip",
}


def posts(azure: State) -> list[dict]:
    return azure.requests_to("/api/v1/ips/", "POST")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_acquire_prints_one_line_per_step_change_and_ends_on_this_vm(
    run: Runner, azure: State
) -> None:
    result = run("acquire")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(LINE.match(line) for line in lines), lines
    text = [line.split("] ", 1)[1] for line in lines]
    assert text[0].startswith(f"acquire {CLUSTER_IP}: request ")
    assert f"remove_ip_config {OTHER_NIC} succeeded" in text
    assert f"add_ip_config {THIS_NIC} succeeded" in text
    assert text[-2:] == [
        f"acquire {CLUSTER_IP} succeeded",
        f"{CLUSTER_IP} is on this VM per instance metadata",
    ]
    assert all(a != b for a, b in itertools.pairwise(text)), "a repeated line"
    assert result.stderr == ""
    assert azure.holder == THIS_NIC


def test_acquire_sends_request_id_deadline_and_the_cluster_context(
    run: Runner, azure: State
) -> None:
    before = dt.datetime.now(dt.UTC)
    result = run("acquire", "--timeout", "120", env=CLP_ENV)
    assert result.returncode == 0, result.stderr
    (post,) = posts(azure)
    body = post["body"]
    assert uuid.UUID(body["requestId"]).version == 4
    deadline = dt.datetime.fromisoformat(body["deadline"].replace("Z", "+00:00"))
    assert before + dt.timedelta(seconds=118) <= deadline <= before + dt.timedelta(seconds=121)
    assert body["context"] == {
        "event": "FAILOVER",
        "server": "server02",
        "group": "failover",
        "resource": "exec-ip",
    }
    polls = azure.requests_to("/api/v1/requests/")
    assert polls and {p["path"] for p in polls} == {f"/api/v1/requests/{body['requestId']}"}
    assert post["headers"]["authorization"].startswith("Bearer ")


def test_context_flags_add_to_the_cluster_context(run: Runner, azure: State) -> None:
    result = run("acquire", "--context", "event=MANUAL", "--context", "ticket=42", env=CLP_ENV)
    assert result.returncode == 0, result.stderr
    assert posts(azure)[0]["body"]["context"]["event"] == "MANUAL"
    assert posts(azure)[0]["body"]["context"]["ticket"] == "42"


def test_without_cluster_variables_no_context_is_sent(run: Runner, azure: State) -> None:
    assert run("acquire").returncode == 0
    assert "context" not in posts(azure)[0]["body"]


@pytest.mark.parametrize("fault", [503, 500, "drop", "drop-after"])
def test_post_is_retried_with_the_same_request_id(run: Runner, azure: State, fault) -> None:
    azure.faults.append(Fault("POST", "/api/v1/ips/", fault, times=2))
    result = run("acquire")
    assert result.returncode == 0, result.stderr
    ids = {p["body"]["requestId"] for p in posts(azure)}
    assert len(posts(azure)) == 3
    assert len(ids) == 1
    assert len(azure.moves) == 1  # "drop-after" was processed: the retry found the same move


def test_the_function_answering_5xx_throughout_is_unreachable(run: Runner, azure: State) -> None:
    azure.faults.append(Fault("POST", "/api/v1/ips/", 502, times=100))
    result = run("acquire")
    assert result.returncode == 10
    assert "502 injected: injected fault 502" in one_line(result.stderr)
    assert len(posts(azure)) == 6  # FUNCTION_MAX_ATTEMPTS


def test_an_unreachable_function_exits_10(tmp_path: Path, server: FakeServer, azure: State) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "c.conf", dead, imds_url=server.url)
    result = subprocess.run(
        [CLIENT_PYTHON, str(CLIENT), "--config", str(config), "acquire"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 10
    assert "cannot reach" in one_line(result.stderr)
    assert "Connection refused" in result.stderr


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        (400, 12, "400 injected"),
        (404, 12, "404 injected"),
        (409, 12, "409 injected"),
        (413, 12, "413 injected"),
        (401, 11, "401 injected"),
        (403, 11, "403 injected"),
    ],
)
def test_a_4xx_is_never_retried(run: Runner, azure: State, fault, code, reason) -> None:
    azure.faults.append(Fault("POST", "/api/v1/ips/", fault, times=5))
    result = run("acquire")
    assert result.returncode == code
    assert reason in one_line(result.stderr)
    assert len(posts(azure)) == 1


def test_an_unknown_ip_is_rejected_with_the_functions_reason(run: Runner, azure: State) -> None:
    result = run("acquire", "--ip", "10.5.0.111")
    assert result.returncode == 12
    assert one_line(result.stderr) == (
        "ipmover: acquire 10.5.0.111 failed: the function rejected the request: "
        "404 unknown_ip: no configured cluster owns 10.5.0.111"
    )


def test_a_reused_request_id_for_another_action_is_a_conflict(run: Runner, azure: State) -> None:
    assert run("acquire", "--request-id", "fixed-1").returncode == 0
    result = run("release", "--request-id", "fixed-1")
    assert result.returncode == 12
    assert "409 request_id_conflict" in result.stderr


def test_a_retried_command_with_the_same_request_id_queues_nothing_new(
    run: Runner, azure: State
) -> None:
    assert run("acquire", "--request-id", "fixed-2").returncode == 0
    assert run("acquire", "--request-id", "fixed-2").returncode == 0
    assert len(azure.moves) == 1


def test_a_token_for_the_wrong_audience_is_refused_with_11(run: Runner, azure: State) -> None:
    azure.audience = "api://someone-else"
    result = run("acquire")
    assert result.returncode == 11
    assert "the function refused this VM: 401 unauthenticated" in one_line(result.stderr)


def test_a_non_member_is_refused_with_11(run: Runner, azure: State) -> None:
    azure.member = False
    result = run("release")
    assert result.returncode == 11
    assert "403 not_a_member: server02 is not a member" in one_line(result.stderr)


def test_a_failed_move_exits_13_with_the_step_and_reason(run: Runner, azure: State) -> None:
    azure.fail_step = "add_ip_config"
    result = run("acquire")
    assert result.returncode == 13
    assert f"add_ip_config {THIS_NIC} failed: add_ip_config failed (fake)" in result.stdout
    assert one_line(result.stderr) == (
        f"ipmover: acquire {CLUSTER_IP} failed: the move failed at step add_ip_config "
        f"({THIS_NIC}): PrivateIPAddressInUse: add_ip_config failed (fake)"
    )


def test_a_timeout_in_the_queue_says_the_position(run: Runner, azure: State) -> None:
    azure.queue_time = 60
    azure.queue_ahead = ["someone-elses-request"]
    azure.deadline_skew = 10  # the function would not expire it before the client gives up
    started = time.monotonic()
    result = run("acquire", "--timeout", "1")
    assert result.returncode == 14
    assert time.monotonic() - started < 10
    assert "queued at position 2 of 2" in result.stdout
    assert re.search(r"timed out after 1\.\ds; request \S+ was queued at position 2 of 2$",
                     one_line(result.stderr))  # fmt: skip


def test_a_timeout_while_running_names_the_step(run: Runner, azure: State) -> None:
    azure.slow_steps = {"add_ip_config": 60}
    # Long enough for a loaded machine to see the request reach that step.
    result = run("acquire", "--timeout", "3")
    assert result.returncode == 14
    assert one_line(result.stderr).endswith(f"was running step add_ip_config ({THIS_NIC})")


def test_a_request_that_expired_in_the_queue_exits_14(run: Runner, azure: State) -> None:
    azure.queue_time = 60
    azure.deadline_skew = -3.5  # the function's clock runs ahead: it expires us early
    result = run("acquire", "--timeout", "5")
    assert result.returncode == 14
    assert "expired in the queue" in one_line(result.stderr)


def test_a_deadline_already_passed_for_the_function_exits_14(run: Runner, azure: State) -> None:
    azure.deadline_skew = -3600
    result = run("acquire")
    assert result.returncode == 14
    assert "400 deadline_passed" in one_line(result.stderr)
    assert "clock" in result.stderr
    assert len(posts(azure)) == 1


def test_acquire_waits_until_instance_metadata_shows_the_ip(run: Runner, azure: State) -> None:
    azure.imds_lag = 0.5
    result = run("acquire")
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.endswith(f"{CLUSTER_IP} is on this VM per instance metadata")
    assert float(last[1:].split("s]")[0]) >= 0.5


def test_acquire_times_out_when_instance_metadata_never_agrees(run: Runner, azure: State) -> None:
    azure.imds_lag = 600
    result = run("acquire", "--timeout", "1")
    assert result.returncode == 14
    assert f"instance metadata still shows {CLUSTER_IP} not on this VM" in result.stderr


def test_no_wait_imds_returns_when_the_function_is_done(run: Runner, azure: State) -> None:
    azure.imds_lag = 600
    result = run("acquire", "--no-wait-imds")
    assert result.returncode == 0, result.stderr
    assert "instance metadata" not in result.stdout


def test_release_does_not_wait_for_metadata_unless_asked(run: Runner, azure: State) -> None:
    azure.holder, azure.visible = THIS_NIC, {CLUSTER_IP: 0.0}
    result = run("release")
    assert result.returncode == 0, result.stderr
    assert f"remove_ip_config {THIS_NIC} succeeded" in result.stdout
    assert "instance metadata" not in result.stdout
    assert azure.holder is None
    azure.holder, azure.visible = THIS_NIC, {CLUSTER_IP: 0.0}
    result = run("release", "--wait-imds")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(
        f"{CLUSTER_IP} is off this VM per instance metadata"
    )


def test_release_of_an_ip_held_elsewhere_touches_nothing(run: Runner, azure: State) -> None:
    result = run("release")
    assert result.returncode == 0, result.stderr
    assert "remove_ip_config" not in result.stdout
    assert azure.holder == OTHER_NIC


def test_polls_ride_out_a_function_outage(run: Runner, azure: State) -> None:
    azure.step_time = 0.1
    azure.faults.append(Fault("GET", "/api/v1/requests/", 503, times=3))
    result = run("acquire")
    assert result.returncode == 0, result.stderr
    assert "status unavailable, still polling: the function is unavailable: 503" in result.stdout
    assert "status available again" in result.stdout


def test_sigterm_exits_15_and_says_where_the_request_was(config: Path, azure: State) -> None:
    azure.queue_time = 60
    process = subprocess.Popen(
        [CLIENT_PYTHON, str(CLIENT), "acquire"],
        env=clean_env(IPMOVER_CONFIG=str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait until it is polling
        if line.rstrip().endswith("queued at position 1 of 1"):
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 15
    assert one_line(stderr).endswith(
        "interrupted by signal 15; the request was queued at position 1 of 1"
    )
