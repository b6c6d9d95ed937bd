"""doctor, move --target with an operator's token file, status --explain: against the fake."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from .conftest import Runner
from .fake_azure import AUDIENCE, CLUSTER_IP, THIS_OID, Fault, State

EXIT_CONFIG, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_CLOCK = 6, 10, 11, 16


def checks(stdout: str) -> dict[str, str]:
    """doctor's lines by check name."""
    found = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("ok", "FAIL", "skip"):
            found[words[1]] = line
    return found


def operator_token(exp: float | None = None, **claims: object) -> str:
    body = {"aud": AUDIENCE, "oid": "0e5f1d2c-3b4a-4c5d-8e6f-7a8b9c0d1e2f", "scp": "x", **claims}
    body["exp"] = int(exp if exp is not None else time.time() + 3600)
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"operator.{payload}.signature"


def test_doctor_passes_and_prints_one_line_per_check(run: Runner, azure: State) -> None:
    result = run("doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = checks(result.stdout)
    assert list(lines) == ["config", "imds", "token", "function", "clock", "claims", "read"]
    assert all(line.startswith("ok ") for line in lines.values())
    assert f"oid {THIS_OID}" in lines["claims"]
    assert "fake-token" not in result.stdout + result.stderr
    assert azure.requests_to("/api/v1/ips/", "POST") == [], "doctor moves nothing"
    (health,) = azure.requests_to("/api/v1/health")
    assert "authorization" not in health["headers"], "no token to the anonymous health route"


def test_doctor_sees_the_node_clock_ahead_of_the_function(run: Runner, azure: State) -> None:
    azure.clock_skew = -45.0  # the function's Date is 45 s behind this node

    result = run("doctor")

    assert result.returncode == EXIT_CLOCK, result.stdout + result.stderr
    assert "45s ahead of the function's" in checks(result.stdout)["clock"]
    assert "doctor 10.5.0.110 failed: clock:" in result.stderr


def test_doctor_refuses_a_delegated_looking_token(run: Runner, azure: State) -> None:
    azure.token_claims = {"scp": "user_impersonation", "idtyp": None}

    result = run("doctor")

    assert result.returncode == EXIT_AUTH, result.stdout + result.stderr
    assert "not an app-only token" in checks(result.stdout)["claims"]


def test_doctor_reports_an_unhealthy_function(run: Runner, azure: State) -> None:
    azure.faults.append(Fault("GET", "/api/v1/health", 503))

    result = run("doctor")

    assert result.returncode == EXIT_UNREACHABLE, result.stdout + result.stderr
    lines = checks(result.stdout)
    assert lines["function"].startswith("FAIL") and "503" in lines["function"]
    assert lines["clock"].startswith("skip") and lines["read"].startswith("skip")


def test_doctor_with_unusable_settings_still_prints_every_check(
    run: Runner, azure: State, tmp_path: Path
) -> None:
    result = run("doctor", env={"IPMOVER_URL": "ftp://nowhere"})

    assert result.returncode == EXIT_CONFIG, result.stdout + result.stderr
    lines = checks(result.stdout)
    assert lines["config"].startswith("FAIL") and "expected an http(s) URL" in lines["config"]
    assert [line.split()[0] for line in lines.values()] == ["FAIL"] + ["skip"] * 6
    assert azure.log == []


def test_move_sends_the_target_with_the_operator_token_from_az_output(
    run: Runner, azure: State, tmp_path: Path
) -> None:
    token = operator_token()
    azure.operator_tokens.append(token)
    token_file = tmp_path / "token.json"
    token_file.write_text(json.dumps({"accessToken": token, "tokenType": "Bearer"}))

    result = run("move", "--target", "server01", "--force", "--token-file", str(token_file))

    assert result.returncode == 0, result.stdout + result.stderr
    (post,) = azure.requests_to("/api/v1/ips/", "POST")
    assert post["headers"]["authorization"] == "Bearer " + token
    assert post["body"]["target"] == "server01" and post["body"]["force"] is True
    assert azure.requests_to("/metadata/identity") == [], "no IMDS token for an operator"
    assert token not in result.stdout + result.stderr
    assert "acquire 10.5.0.110 to server01 succeeded" in result.stdout


def test_move_refuses_an_expired_or_unusable_token_before_calling(
    run: Runner, azure: State, tmp_path: Path
) -> None:
    expired = tmp_path / "expired"
    expired.write_text(operator_token(exp=time.time() - 10))
    garbage = tmp_path / "garbage"
    garbage.write_text("not a token\n")

    late = run("move", "--target", "server01", "--token-file", str(expired))
    bad = run("move", "--target", "server01", "--token-file", str(garbage))
    absent = run("move", "--target", "server01", "--token-file", str(tmp_path / "none"))

    assert late.returncode == EXIT_AUTH and "expired at" in late.stderr
    assert bad.returncode == EXIT_CONFIG and "holds no token" in bad.stderr
    assert absent.returncode == EXIT_CONFIG
    assert azure.requests_to("/api/v1/") == []


def test_acquire_never_uses_the_token_file(run: Runner, azure: State, tmp_path: Path) -> None:
    # A node acts only as itself: an operator token lying around is not picked up.
    token_file = tmp_path / "token"
    token_file.write_text(operator_token())

    result = run("acquire", "--token-file", str(token_file))

    assert result.returncode == 0, result.stdout + result.stderr
    (post,) = azure.requests_to("/api/v1/ips/", "POST")
    assert post["headers"]["authorization"] == "Bearer " + azure.token_for(AUDIENCE)


def test_status_explain_says_who_moved_the_ip_last(run: Runner, azure: State) -> None:
    assert run("acquire", "--no-wait-imds").returncode == 0
    azure.visible.clear()  # gone from this VM's metadata again

    quiet = run("status", "--quiet", "--explain")
    plain = run("status", "--quiet")

    assert quiet.returncode == 7 and plain.returncode == 7
    assert quiet.stdout.startswith(f"last move of {CLUSTER_IP}: acquire by server02 at ")
    assert plain.stdout == "" and len(azure.requests_to("/api/v1/ips/", "GET")) == 1
