"""The client's decisions as plain functions: IMDS token retries on a fake clock, parsing."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from node_client import ipmover

from .fake_azure import AUDIENCE, FakeServer, State


class FakeClock:
    """Replaces the client's monotonic clock and sleep: sleeping advances time instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ipmover, "_monotonic", fake.monotonic)
    monkeypatch.setattr(ipmover, "_sleep", fake.sleep)
    # No config file: everything below comes from "flags".
    monkeypatch.setattr(ipmover, "DEFAULT_CONFIG", str(tmp_path / "absent.conf"))
    return fake


def session(server: FakeServer, timeout: float = 300, backoff: float = 1.0) -> ipmover.Session:
    flags = {
        "url": server.url,
        "audience": AUDIENCE,
        "ip": "10.5.0.110",
        "imds_url": server.url,
        "timeout": timeout,
        "retry_backoff": backoff,
    }
    settings = ipmover.load_settings(flags, {})
    return ipmover.Session(settings, io.StringIO(), io.StringIO())


def token_calls(azure: State) -> int:
    return len(azure.requests_to("/metadata/identity/oauth2/token"))


def test_token_survives_404_410_429_and_5xx_with_exponential_backoff(
    server: FakeServer, azure: State, clock: FakeClock
) -> None:
    azure.token_script = [404, 410, 429, 500, 503]
    assert session(server).token() == server.state.token_for(AUDIENCE)
    assert token_calls(azure) == 6
    assert clock.sleeps == [1, 2, 4, 8, 16]
    (first, *_) = azure.requests_to("/metadata/identity/oauth2/token")
    assert first["headers"]["metadata"] == "true"
    assert first["query"] == {"api-version": "2018-02-01", "resource": AUDIENCE}


def test_410_is_retried_for_70_seconds_then_given_up(
    server: FakeServer, azure: State, clock: FakeClock
) -> None:
    azure.token_script = [410] * 1000
    with pytest.raises(ipmover.TokenError, match="IMDS issued no token: 410"):
        session(server).token()
    assert sum(clock.sleeps) == pytest.approx(ipmover.IMDS_GONE_BUDGET)
    assert max(clock.sleeps) <= ipmover.BACKOFF_MAX
    assert token_calls(azure) == len(clock.sleeps) + 1


def test_410_does_not_use_up_the_attempts_for_other_errors(
    server: FakeServer, azure: State, clock: FakeClock
) -> None:
    azure.token_script = [410] * 7 + [500] * 4
    assert session(server).token()
    assert token_calls(azure) == 12


def test_other_errors_are_retried_a_bounded_number_of_times(
    server: FakeServer, azure: State, clock: FakeClock
) -> None:
    azure.token_script = [500] * 100
    with pytest.raises(ipmover.TokenError, match="500"):
        session(server).token()
    assert token_calls(azure) == ipmover.IMDS_MAX_ATTEMPTS


def test_retries_stop_at_the_commands_deadline(
    server: FakeServer, azure: State, clock: FakeClock
) -> None:
    azure.token_script = [410] * 1000
    with pytest.raises(ipmover.TokenError):
        session(server, timeout=10).token()
    assert sum(clock.sleeps) < 10


def test_no_identity_is_not_retried(server: FakeServer, azure: State, clock: FakeClock) -> None:
    azure.identity = False
    with pytest.raises(ipmover.TokenError, match="no managed identity on this VM"):
        session(server).token()
    assert token_calls(azure) == 1
    assert clock.sleeps == []


def test_the_token_is_cached_for_its_lifetime(
    server: FakeServer, azure: State, clock: FakeClock
) -> None:
    client = session(server, timeout=10**6)  # longer than any real command, to outlive a token
    client.token()
    clock.now += 86399 - ipmover.TOKEN_REFRESH_MARGIN - 1
    client.token()
    assert token_calls(azure) == 1
    clock.now += 2
    client.token()
    assert token_calls(azure) == 2


def test_metadata_unreachable_for_a_token_is_a_token_error(clock: FakeClock) -> None:
    flags = {"imds_url": "http://127.0.0.1:9", "audience": "a"}
    client = ipmover.Session(ipmover.load_settings(flags, {}), io.StringIO(), io.StringIO())
    with pytest.raises(ipmover.TokenError, match="instance metadata unreachable for a token"):
        client.token()
    assert len(clock.sleeps) == ipmover.IMDS_MAX_ATTEMPTS - 1


def test_no_identity_exits_9(run, azure: State) -> None:
    azure.identity = False
    result = run("acquire")
    assert result.returncode == 9
    assert "no managed identity on this VM (IMDS: 400 invalid_request: Identity not found)" in (
        result.stderr
    )


def test_token_retries_in_the_real_process(run, azure: State) -> None:
    azure.token_script = [404, 410, 429, 500]
    result = run("acquire")
    assert result.returncode == 0, result.stderr
    assert token_calls(azure) == 5


# Parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T12:05:00Z", dt.datetime(2026, 11, 26, 12, 5, tzinfo=dt.UTC)),
        ("2026-11-26T12:05:00.250Z", dt.datetime(2026, 11, 26, 12, 5, 0, 250000, tzinfo=dt.UTC)),
        ("2026-11-26T14:05:00+02:00", dt.datetime(2026, 11, 26, 12, 5, tzinfo=dt.UTC)),
        ("2026-11-26 12:05:00-0130", dt.datetime(2026, 11, 26, 13, 35, tzinfo=dt.UTC)),
        ("2026-13-26T12:05:00Z", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_parse_rfc3339(text, expected) -> None:
    assert ipmover.parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, b'{"error": {"code": "not_a_member", "message": "no"}}', "403 not_a_member: no"),
        (400, b'{"error": "invalid_request", "error_description": "x"}', "400 invalid_request: x"),
        (502, b"<html>\n Bad   gateway</html>", "502 Bad Gateway: <html> Bad gateway</html>"),
        (503, b"", "503 Service Unavailable"),
    ],
)
def test_describe_error_is_one_line(status, body, expected) -> None:
    assert ipmover.describe_error(status, body) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://f.example",
        "https://f.example/",
        "https://f.example/api/v1",
        "https://f.example/api/v1/",
    ],
)
def test_api_base(url: str) -> None:
    assert ipmover.api_base(url.rstrip("/")) == "https://f.example/api/v1"


@pytest.mark.parametrize(
    "document",
    [[{"a": 1}], {"records": [{"a": 1}]}, {"history": [{"a": 1}]}, {"value": [{"a": 1}]}],
)
def test_history_records_accepts_a_list_or_a_wrapped_list(document) -> None:
    assert ipmover.history_records(document) == [{"a": 1}]


def test_queue_entries_may_be_ids_or_objects(
    server: FakeServer, azure: State, clock: FakeClock
) -> None:
    azure.queue_ahead = [{"requestId": "r1"}, "r2"]  # type: ignore[list-item]
    client = session(server)
    assert ipmover.queue_position(client, "r2") == "at position 2 of 2"
    assert ipmover.queue_position(client, "r1") == "at position 1 of 2"
    assert ipmover.queue_position(client, "r3") == ""


def test_every_exit_code_is_in_the_table() -> None:
    codes = {code for code, _ in ipmover.EXIT_TABLE}
    errors = [ipmover.ConfigError, ipmover.MetadataError, ipmover.TokenError]
    errors += [ipmover.UnreachableError, ipmover.AuthError, ipmover.RejectedError]
    errors += [ipmover.MoveFailed, ipmover.TimeoutReached, ipmover.Interrupted]
    assert {e.exit_code for e in errors} <= codes
    assert len({e.exit_code for e in errors}) == len(errors)
    assert {ipmover.EXIT_OK, ipmover.EXIT_USAGE, ipmover.EXIT_NOT_HERE} <= codes


# The bare-socket HTTP used for IMDS -------------------------------------------------------


def test_parse_http_response_with_content_length() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\n{}extra"
    assert ipmover.parse_http_response(raw) == (
        200,
        {"content-length": "2", "retry-after": "3"},
        b"{}",
    )


def test_parse_http_response_with_chunked_transfer_coding() -> None:
    head = b"HTTP/1.1 410 Gone\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = head + b'4;x=y\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n'
    status, _, body = ipmover.parse_http_response(raw)
    assert (status, body) == (410, b'{"a": 1}')


def test_parse_http_response_until_the_connection_closed() -> None:
    assert ipmover.parse_http_response(b"HTTP/1.0 200 OK\r\n\r\nall of it")[2] == b"all of it"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    ],
)
def test_parse_http_response_refuses_incomplete_answers(raw: bytes) -> None:
    with pytest.raises(ipmover.TransportError):
        ipmover.parse_http_response(raw)


def test_imds_must_be_plain_http() -> None:
    with pytest.raises(ipmover.TransportError, match="plain http") as caught:
        ipmover.plain_http_get("https://169.254.169.254/metadata", {}, 1)
    assert caught.value.permanent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.5.0.110", "10.5.0.110"),
        ("fd00:0::1", "fd00::1"),
        ("10.5.0.256", None),
        ("10.5.0", None),
        ("server01", None),
        ("", None),
    ],
)
def test_normalize_ip(text: str, expected) -> None:
    assert ipmover.normalize_ip(text) == expected
