"""Refused requests: a clear 401/403/4xx, nothing queued, nothing changed."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
import requests

from emulator.stack import AUDIENCE

from .conftest import IP, Mover


def _post_raw(mover: Mover, token: str | None, ip: str = IP, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    kwargs.setdefault("json", {"requestId": str(uuid.uuid4())})
    return mover.http.post(
        f"{mover.stack.api}/ips/{ip}/acquire", headers=headers, timeout=30, **kwargs
    )


def _minted(mover: Mover, **claims) -> str:
    return mover.stack.control.token("server01", AUDIENCE, claims=claims)


@pytest.mark.parametrize(
    ("case", "token_of"),
    [
        ("no token", lambda m: None),
        ("not a JWT", lambda m: "not-a-token"),
        (
            "forged signature",
            lambda m: m.stack.control.token("server01", AUDIENCE, forge="bad-signature"),
        ),
        ("alg none", lambda m: m.stack.control.token("server01", AUDIENCE, forge="alg-none")),
        ("wrong audience", lambda m: m.stack.control.token("server01", "api://other-app")),
        ("ARM audience", lambda m: m.stack.control.token("server01")),
        ("wrong issuer", lambda m: _minted(m, iss="https://sts.windows.net/evil/")),
        ("wrong tenant", lambda m: _minted(m, tid=str(uuid.uuid4()))),
        ("expired", lambda m: _minted(m, exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200)),
    ],
)
def test_invalid_tokens_are_401(untouched: Mover, case: str, token_of) -> None:
    r = _post_raw(untouched, token_of(untouched))
    assert r.status_code == 401, (case, r.text)
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_a_bearer_scheme_is_required(untouched: Mover) -> None:
    token = untouched.token("server01")
    r = untouched.http.post(
        f"{untouched.stack.api}/ips/{IP}/acquire",
        headers={"Authorization": f"Basic {token}"},
        json={},
        timeout=30,
    )
    assert r.status_code == 401


def test_an_identity_that_is_no_member_is_403(untouched: Mover) -> None:
    token = _minted(untouched, oid=str(uuid.uuid4()), xms_mirid=None)
    r = _post_raw(untouched, token)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "not_a_member"


def test_a_token_naming_another_vm_is_403(untouched: Mover) -> None:
    other_vm = untouched.stack.config["clusters"][0]["members"][1]["vmResourceId"]
    r = _post_raw(untouched, _minted(untouched, xms_mirid=other_vm))
    assert r.status_code == 403


def test_a_member_cannot_move_the_ip_to_another_member(untouched: Mover) -> None:
    r = untouched.post("acquire", "server01", target="server02")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("ip", "status", "code"),
    [
        ("10.5.0.999", 400, "invalid_ip"),
        ("banana", 400, "invalid_ip"),
        ("10.5.0.111", 404, "unknown_ip"),
    ],
)
def test_malformed_and_unknown_ips(untouched: Mover, ip: str, status: int, code: str) -> None:
    r = untouched.post("acquire", "server01", ip=ip)
    assert r.status_code == status and r.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'{"requestId": "has spaces in it"}', "invalid_request_id"),
        (b'{"deadline": "tomorrow"}', "invalid_deadline"),
        (b'{"deadline": "2020-01-01T00:00:00Z"}', "deadline_passed"),
        (b'{"context": {"password": "x"}}', "invalid_body"),
        (b'{"surprise": 1}', "invalid_body"),
    ],
)
def test_bad_bodies_are_400(untouched: Mover, body: bytes, code: str) -> None:
    r = _post_raw(
        untouched,
        untouched.token("server01"),
        data=body,
        json=None,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


def test_an_oversized_body_is_413(untouched: Mover) -> None:
    body = b'{"context": {"event": "' + b"x" * 20000 + b'"}}'
    r = _post_raw(untouched, untouched.token("server01"), data=body, json=None)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_unknown_and_foreign_requests_are_404(mover: Mover) -> None:
    assert mover.get(f"requests/{uuid.uuid4()}", "server01").status_code == 404
    assert mover.get("requests/bad%20id", "server01").status_code == 400
    mine = mover.move("acquire", "server01")["requestId"]
    r = mover.get(f"requests/{mine}", "server02")
    assert r.status_code == 404, "another VM must not read this VM's request"


def test_reads_need_a_valid_token(mover: Mover) -> None:
    for path in (f"ips/{IP}", f"ips/{IP}/history", f"requests/{uuid.uuid4()}"):
        r = mover.http.get(f"{mover.stack.api}/{path}", timeout=10)
        assert r.status_code == 401, path


def test_no_token_reaches_the_logs(mover: Mover) -> None:
    token = mover.token("server01")
    mover.move("acquire", "server01")
    _post_raw(mover, token[:-4] + "AAAA")  # a refused one is logged with its reason
    logs = (mover.stack.state_dir / "host.log").read_text(errors="replace")
    logs += (mover.stack.state_dir / "azure.log").read_text(errors="replace")
    assert token not in logs
    assert "eyJ" not in logs, "something that looks like a JWT was logged"


# -- callers by kind of token ---------------------------------------------------


def test_a_delegated_token_with_a_members_object_id_is_refused(untouched: Mover) -> None:
    member = untouched.stack.config["clusters"][0]["members"][0]["principalId"]
    token = untouched.stack.control.user_token(AUDIENCE, oid=member)

    r = _post_raw(untouched, token)

    assert r.status_code == 403
    assert r.json()["error"]["code"] == "not_a_member"


def test_a_delegated_token_cannot_read_the_vms_own_request(mover: Mover) -> None:
    request_id = mover.move("acquire", "server01")["requestId"]
    member = mover.stack.config["clusters"][0]["members"][0]["principalId"]
    headers = {"Authorization": f"Bearer {mover.stack.control.user_token(AUDIENCE, oid=member)}"}

    r = mover.http.get(f"{mover.stack.api}/requests/{request_id}", headers=headers, timeout=10)

    assert r.status_code == 404


@pytest.mark.parametrize("idtyp", ["user", "device"])
def test_a_token_typed_other_than_app_is_no_vm(untouched: Mover, idtyp: str) -> None:
    r = _post_raw(untouched, _minted(untouched, idtyp=idtyp))

    assert r.status_code == 403
    assert r.json()["error"]["code"] == "not_a_member"


def test_a_token_with_scopes_is_no_vm(untouched: Mover) -> None:
    r = _post_raw(untouched, _minted(untouched, scp="user_impersonation"))

    assert r.status_code == 403


def test_a_vm_is_recognised_without_idtyp_and_without_xms_mirid(mover: Mover) -> None:
    # idtyp is an optional claim; xms_mirid is not issued for an app registration's audience.
    imds = jwt.decode(mover.token("server01"), options={"verify_signature": False})
    token = _minted(mover, idtyp=None)

    r = mover.post("acquire", "server01", token=token)

    assert "xms_mirid" not in imds
    assert r.status_code == 202, r.text
    assert mover.wait(r.json()["requestId"], "server01")["status"] == "succeeded"


# -- caller-controlled text in the logs ---------------------------------------------


def _forged() -> str:
    """A line a caller would like to see in the log (its start unique to the test)."""
    return f"FORGED-{uuid.uuid4().hex[:8]} granted operator rights to mallory"


def _log_lines(mover: Mover) -> list[str]:
    return (mover.stack.state_dir / "host.log").read_text(errors="replace").splitlines()


def _only_inside(lines: list[str], forged: str, *markers: str) -> bool:
    """``forged`` shows (its start at least), and only within lines that hold a ``marker``."""
    holding = [line for line in lines if forged[:15] in line]
    return bool(holding) and all(any(m in line for m in markers) for line in holding)


@pytest.mark.parametrize("separator", ["\n", "\r\n", "\r", "\u2028", "\x85", "\x0b"])
def test_an_unverified_kid_cannot_forge_a_log_line(untouched: Mover, separator: str) -> None:
    forged = _forged()
    token = untouched.stack.control.token(
        "server01", AUDIENCE, header={"kid": f"evil{separator}{forged}"}
    )

    r = _post_raw(untouched, token)

    assert r.status_code == 401
    assert "not published by the issuer" in r.json()["error"]["message"]
    assert _only_inside(_log_lines(untouched), forged, "refused POST")


def test_an_unverified_alg_cannot_forge_a_log_line(untouched: Mover) -> None:
    forged = _forged()
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": f"RS256\n{forged}", "typ": "JWT"}).encode()
    ).rstrip(b"=")

    r = _post_raw(untouched, f"{header.decode()}.e30.c2ln")

    assert r.status_code == 401
    assert _only_inside(_log_lines(untouched), forged, "refused POST")


def test_the_requests_context_cannot_forge_a_log_line(mover: Mover) -> None:
    forged = _forged()
    r = mover.post("acquire", "server01", context={"event": f"FAILOVER\n{forged}"})

    assert r.status_code == 202, r.text
    mover.wait(r.json()["requestId"], "server01")
    # The event is in the queued line and, JSON-escaped, in the request's telemetry line.
    assert _only_inside(_log_lines(mover), forged, "queued request=", "ipmover.move {")
