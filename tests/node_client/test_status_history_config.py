"""status (instance metadata only), history, settings and usage, through the client process."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import trustme

from .conftest import CLIENT, CLIENT_PYTHON, Runner, clean_env, write_config
from .fake_azure import AUDIENCE, CLUSTER_IP, THIS_NIC, FakeServer, Fault, State
from .test_moves import free_port, one_line


def run_with(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLIENT_PYTHON, str(CLIENT), "--config", str(config), *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# status ------------------------------------------------------------------------------------


def test_status_is_0_when_metadata_shows_the_ip_and_7_when_not(run: Runner, azure: State) -> None:
    result = run("status")
    assert (result.returncode, result.stdout) == (7, f"{CLUSTER_IP} is not on this VM\n")
    azure.visible[CLUSTER_IP] = 0.0
    result = run("status")
    assert (result.returncode, result.stdout) == (0, f"{CLUSTER_IP} is on this VM\n")


def test_status_quiet_prints_nothing(run: Runner, azure: State) -> None:
    result = run("status", "-q")
    assert (result.returncode, result.stdout, result.stderr) == (7, "", "")


def test_status_reads_only_instance_metadata(run: Runner, azure: State) -> None:
    assert run("status").returncode == 7
    assert [e["path"] for e in azure.log] == ["/metadata/instance/network"]
    (call,) = azure.log
    assert call["headers"]["metadata"] == "true"
    assert call["query"] == {"api-version": "2021-02-01"}


def test_status_needs_only_the_ip(tmp_path: Path, server: FakeServer, azure: State) -> None:
    config = tmp_path / "only-ip.conf"
    config.write_text(f"[ipmover]\nip = {CLUSTER_IP}\nimds_url = {server.url}\n")
    assert run_with(config, "status").returncode == 7


def test_status_retries_transient_metadata_errors(run: Runner, azure: State) -> None:
    azure.network_script = [500, 429, 404]
    azure.visible[CLUSTER_IP] = 0.0
    assert run("status").returncode == 0
    assert len(azure.log) == 4


def test_status_without_metadata_exits_8(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.conf", "http://127.0.0.1:9", imds_url=None)
    result = run_with(config, "status", IPMOVER_IMDS_URL=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 8
    assert "instance metadata unreachable: Connection refused" in one_line(result.stderr)


def test_status_with_metadata_refusing_exits_8(run: Runner, azure: State) -> None:
    azure.network_script = [400]
    result = run("status")
    assert result.returncode == 8
    assert "instance metadata: 400" in one_line(result.stderr)


# history -----------------------------------------------------------------------------------


def test_history_prints_a_table_newest_first(run: Runner, azure: State) -> None:
    assert run("acquire", env={"CLP_EVENT": "START"}).returncode == 0
    azure.fail_step = "remove_ip_config"
    assert run("release", env={"CLP_EVENT": "STOP"}).returncode == 13
    result = run("history")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "FINISHED", "(UTC)", "ACTION", "STATUS", "BY", "EVENT", "FROM", "TO", "TOOK", "ERROR",
        "REQUEST", "NOTE",
    ]  # fmt: skip
    assert len(rows) == 2
    assert rows[0].split()[2:6] == ["release", "failed", "server02", "STOP"]
    assert "PrivateIPAddressInUse" in rows[0]
    assert rows[1].split()[2:8] == [
        "acquire", "succeeded", "server02", "START", "server01-nic", THIS_NIC,
    ]  # fmt: skip
    assert rows[1].split()[8].endswith("s")


def test_history_json_is_the_records(run: Runner, azure: State) -> None:
    assert run("acquire").returncode == 0
    result = run("history", "--json", "--limit", "5")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["action"] for r in records] == ["acquire"]
    assert records[0]["status"] == "succeeded"
    (call,) = azure.requests_to(f"/api/v1/ips/{CLUSTER_IP}/history")
    assert call["query"] == {"limit": "5"}


def test_history_of_a_quiet_ip(run: Runner, azure: State) -> None:
    result = run("history")
    assert (result.returncode, result.stdout) == (0, f"no finished requests for {CLUSTER_IP}\n")


def test_history_refused_exits_11(run: Runner, azure: State) -> None:
    azure.member = False
    assert run("history").returncode == 11


# settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"url": None}, "missing setting(s): url"),
        ({"audience": None}, "missing setting(s): audience"),
        ({"ip": "10.5.0.300"}, "ip (from "),
        ({"timeout": "4000"}, "timeout must be more than 0 and at most 1800 s"),
        ({"timeout": "soon"}, "expected seconds"),
        ({"url": "http://function.example"}, "refusing to send a token over plain http"),
        ({"url": "ftp://x"}, "expected an http(s) URL"),
        ({"ulr": "https://typo"}, "unknown key(s) ulr"),
        ({"wait_imds": "maybe"}, "expected yes or no"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file /nonexistent/ca.pem is not readable"),
    ],
)
def test_configuration_errors_exit_6(tmp_path: Path, server: FakeServer, extra, reason) -> None:
    config = write_config(tmp_path / "c.conf", server.url, **extra)
    result = run_with(config, "acquire")
    assert result.returncode == 6
    assert reason in one_line(result.stderr)


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    result = run_with(tmp_path / "missing.conf", "status")
    assert result.returncode == 6
    assert "does not exist" in one_line(result.stderr)


def test_a_config_file_without_the_section_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "c.conf"
    config.write_text("url = https://x\n")
    result = run_with(config, "status")
    assert result.returncode == 6
    assert "config file" in one_line(result.stderr)


def test_flags_beat_environment_beats_file(tmp_path: Path, server: FakeServer) -> None:
    config = write_config(tmp_path / "c.conf", server.url, ip="10.0.0.1", timeout=50)
    result = run_with(config, "check-config", "--ip", "10.0.0.3", IPMOVER_IP="10.0.0.2")
    assert result.returncode == 0, result.stderr
    settings = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    assert settings["ip"] == "10.0.0.3"
    assert settings["timeout"] == "50.0"
    result = run_with(config, "check-config", IPMOVER_IP="10.0.0.2", IPMOVER_TIMEOUT="7")
    settings = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    assert (settings["ip"], settings["timeout"]) == ("10.0.0.2", "7.0")
    assert settings["audience"] == AUDIENCE


def test_options_work_before_and_after_the_command(run: Runner, azure: State) -> None:
    azure.visible[CLUSTER_IP] = 0.0
    assert run("--quiet", "status", "--ip", CLUSTER_IP).stdout == ""
    assert run("--ip", "10.5.0.9", "status", "-q").returncode == 7


@pytest.mark.parametrize(
    "args",
    [[], ["move"], ["acquire", "--request-id", "has space"], ["acquire", "--context", "novalue"]],
)
def test_usage_errors_exit_2(run: Runner, args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("ipmover: ")


def test_help_explains_settings_examples_and_exit_codes(run: Runner) -> None:
    result = run("--help")
    assert result.returncode == 0
    for text in ("IPMOVER_SOME_OPTION", "examples:", "CLP_EVENT=FAILOVER", "exit codes:", "14"):
        assert text in result.stdout


def test_the_token_never_reaches_the_output(run: Runner, azure: State) -> None:
    azure.faults.append(Fault("POST", "/api/v1/ips/", 500, times=1))
    outputs = [run("-v", "acquire"), run("-v", "history", "--json")]
    azure.member = False
    outputs.append(run("-v", "release"))
    for result in outputs:
        assert "fake-token" not in result.stdout + result.stderr
    assert "POST http://" in outputs[0].stderr  # -v did log the calls


# https -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(server: FakeServer, tmp_path_factory: pytest.TempPathFactory):
    """The mover API over https (certificate from a test CA), sharing the fake's state."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    https = FakeServer(tls=context, peer=server).start()
    yield https, ca_file
    https.stop()


def test_https_with_a_ca_file(tmp_path: Path, server: FakeServer, azure: State, tls_server) -> None:
    https, ca_file = tls_server
    config = write_config(tmp_path / "c.conf", https.url, imds_url=server.url, ca_file=ca_file)
    result = run_with(config, "acquire")
    assert result.returncode == 0, result.stderr
    assert posts_over(azure) == 1


def test_https_with_an_untrusted_certificate_exits_10_without_retrying(
    tmp_path: Path, server: FakeServer, azure: State, tls_server
) -> None:
    https, _ = tls_server
    config = write_config(tmp_path / "c.conf", https.url, imds_url=server.url)
    started = time.monotonic()
    result = run_with(config, "acquire", IPMOVER_RETRY_BACKOFF="5")
    assert time.monotonic() - started < 5  # a retry would have slept 5 s
    assert result.returncode == 10
    assert "TLS certificate verification failed" in one_line(result.stderr)


def posts_over(azure: State) -> int:
    return len(azure.requests_to("/api/v1/ips/", "POST"))
