#!/usr/bin/env python3
# ruff: noqa: B905, UP006, UP017, UP035, UP045
# Why the noqa above: this file runs on the distributions' own python3, down to 3.6 (RHEL 8),
# while the repository's ruff targets 3.11. Those rules would rewrite typing.Dict / Optional
# into 3.9/3.10 syntax (UP006, UP035, UP045), timezone.utc into datetime.UTC (3.11, UP017) and
# add zip(strict=) (3.10, B905). tests/node_client/test_compat.py runs vermin to keep 3.6.
"""ipmover: move this VM's secondary private IP through the IP-mover Function app.

One file, Python 3.6+ standard library only; install it by copying it, e.g. to
/usr/local/sbin/ipmover. The cluster software runs it instead of calling `az`:

    acquire   put the IP on this VM (and on no other), wait until instance metadata shows it
    release   take the IP off this VM (never touches other VMs)
    status    is the IP on this VM? instance metadata only; exit 0 yes, 7 no (cluster monitors)
    history   who moved the IP when and why (table, or --json)
    doctor    check everything a move needs, one line per check, without moving anything
    move      operators: move the IP to a named member, with the operator's own token
    dry-run   operators: what a move of each IP of a cluster to each member would change

It authenticates with the VM's managed identity (a token from the instance metadata service,
IMDS), sends one request per move with an idempotency key and a deadline, polls it until it
finishes and prints one line per step for the cluster's log. Layout: constants, parameter
table, exit codes and errors, helpers that return or raise, one function per command, the
dispatch table, and main(), the only place that turns outcomes into exit codes.
"""

import argparse
import configparser
import datetime
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.parse
from collections import namedtuple

# Start-up time matters: the cluster runs `status` every few seconds. So typing is imported
# for type checkers only (annotations are strings), and urllib.request / http.client / ssl /
# uuid (two thirds of the start-up on Python 3.6) are imported inside the functions that call
# the function app; `status` reads IMDS over a bare socket (plain_http_get).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

# --------------------------------------------------------------------------------------------
# Constants

PROG = "ipmover"
VERSION = "1.0.0"
DEFAULT_CONFIG = "/etc/ipmover.conf"
CONFIG_SECTION = "ipmover"
ENV_PREFIX = "IPMOVER_"  # IPMOVER_URL, IPMOVER_TIMEOUT, ... and IPMOVER_CONFIG
API_PATH = "/api/v1"

IMDS_DEFAULT_URL = "http://169.254.169.254"
IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"
IMDS_TOKEN_API_VERSION = "2018-02-01"
IMDS_NETWORK_PATH = "/metadata/instance/network"
IMDS_NETWORK_API_VERSION = "2021-02-01"
IMDS_HTTP_TIMEOUT = 5.0  # IMDS is on the host: a call that takes longer is a hung call

# Azure's guidance for IMDS: retry 404, 429 and 5xx with exponential backoff; 410 means IMDS
# is being upgraded and may last up to 70 s, so 410 is retried for that long from the start.
IMDS_RETRY_STATUSES = frozenset([404, 410, 429, *range(500, 600)])
IMDS_MAX_ATTEMPTS = 6  # for everything but 410 (and always within the command's timeout)
IMDS_GONE_BUDGET = 70.0  # seconds of 410 answers we sit out

FUNCTION_HTTP_TIMEOUT = 30.0  # one call to the function; the command's deadline cuts it shorter
FUNCTION_MAX_ATTEMPTS = 6  # connection errors, 429 and 5xx; a 4xx is never retried
BACKOFF_MAX = 16.0  # longest single sleep between retries
TOKEN_REFRESH_MARGIN = 300.0  # use a cached token only while it has 5 more minutes to live
MAX_TIMEOUT = 1800.0  # the function refuses deadlines more than 30 minutes away
TERMINAL_STATUSES = ("succeeded", "failed", "expired")
CLUSTER_CONTEXT_ENV = (  # EXPRESSCLUSTER's script environment -> request context
    ("CLP_EVENT", "event"),
    ("CLP_SERVER", "server"),
    ("CLP_GROUPNAME", "group"),
    ("CLP_RESOURCENAME", "resource"),
)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # the API's idempotency-key alphabet
CONTEXT_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
RFC3339_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:?\d\d)?$"
)
HTTP_REASONS = {  # for error answers without a JSON body (http.client is not imported early)
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    408: "Request Timeout", 409: "Conflict", 410: "Gone", 413: "Payload Too Large",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip
# doctor: how far this VM's clock may be from the function's before deadlines go wrong. The
# node sends deadlines in its own time; the function judges them in its own. A node ahead
# by S seconds gets requests that may still run S seconds after it gave up; one behind by
# more than its timeout is refused (deadline_passed). HTTP's Date has whole seconds.
CLOCK_SKEW_MAX = 10.0
# status --explain: how many history records to look through for the latest move.
EXPLAIN_HISTORY_LIMIT = 5
TRUE_WORDS = ("1", "yes", "true", "on")
FALSE_WORDS = ("0", "no", "false", "off")

# --------------------------------------------------------------------------------------------
# Parameter table: one row per setting. Each can come from a flag (--name-with-dashes), from
# the environment (IPMOVER_NAME) or from the config file (name = ...), in that order of
# precedence, else the default. `kind` selects the parser in _parse_value().

Param = namedtuple("Param", "name kind default metavar help")

PARAMS = (
    Param("url", "url", None, "URL", "base URL of the mover Function app (https)"),
    Param("audience", "text", None, "URI", "application ID URI the function accepts tokens for"),
    Param("ip", "ip", None, "IP", "the secondary private IP address to act on"),
    Param(
        "timeout",
        "seconds",
        300.0,
        "SECONDS",
        "give up after this long; also the request's deadline (default 300, at most 1800)",
    ),
    Param("imds_url", "url", IMDS_DEFAULT_URL, "URL", "instance metadata base URL (for tests)"),
    Param("client_id", "text", None, "ID", "client id of the user-assigned identity to use"),
    Param("ca_file", "file", None, "FILE", "CA bundle for the function's certificate"),
    Param(
        "wait_imds",
        "bool",
        None,
        "BOOL",
        "after the move, wait until instance metadata agrees (default: acquire yes, release no)",
    ),
    Param("poll_interval", "seconds", 0.5, "SECONDS", "pause between status polls (default 0.5)"),
    Param("retry_backoff", "seconds", 1.0, "SECONDS", "first retry pause, doubled per retry"),
    Param(
        "token_file",
        "file",
        None,
        "FILE",
        "operators (move, dry-run, history): a file holding your own token for the audience, "
        "raw or as `az account get-access-token` prints it; - reads stdin",
    ),
)
PARAM_BY_NAME = {p.name: p for p in PARAMS}

# Which settings each command cannot do without.
REQUIRED = {
    "acquire": ("ip", "url", "audience"),
    "release": ("ip", "url", "audience"),
    "status": ("ip",),
    "history": ("ip", "url", "audience"),
    "check-config": ("ip", "url", "audience"),
    "doctor": ("ip", "url", "audience"),
    "move": ("ip", "url", "audience"),
    "dry-run": ("url", "audience"),
}
# Commands that call the function with an operator's own token when token_file is set (the
# others always use this VM's managed identity: a node acts only as itself).
OPERATOR_COMMANDS = ("move", "dry-run", "history")

# --------------------------------------------------------------------------------------------
# Exit codes: the one table. 6 and 7 are the OCF codes for the same outcome, so the
# Pacemaker agent can pass them through; EXPRESSCLUSTER only looks at zero / non-zero.

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 6
EXIT_NOT_HERE = 7
EXIT_METADATA = 8
EXIT_NO_TOKEN = 9
EXIT_UNREACHABLE = 10
EXIT_AUTH = 11
EXIT_REJECTED = 12
EXIT_FAILED = 13
EXIT_TIMEOUT = 14
EXIT_INTERRUPTED = 15
EXIT_CLOCK = 16

EXIT_TABLE = (
    (EXIT_OK, "done; for status: the IP is on this VM"),
    (EXIT_ERROR, "unexpected error (malformed answer, bug)"),
    (EXIT_USAGE, "bad command line"),
    (EXIT_CONFIG, "configuration error (missing/invalid url, audience, ip, timeout, files)"),
    (EXIT_NOT_HERE, "status: the IP is not on this VM"),
    (EXIT_METADATA, "instance metadata (IMDS) unreachable or unusable"),
    (EXIT_NO_TOKEN, "no managed identity, or IMDS issued no token"),
    (EXIT_UNREACHABLE, "function unreachable or unavailable (network, TLS, 5xx)"),
    (EXIT_AUTH, "function refused this VM (401/403: audience, identity, membership)"),
    (EXIT_REJECTED, "function rejected the request (other 4xx: unknown IP, bad request)"),
    (EXIT_FAILED, "the move failed (the function says why)"),
    (EXIT_TIMEOUT, "timeout: request expired, still queued/running, or IMDS never agreed"),
    (EXIT_INTERRUPTED, "interrupted by SIGTERM/SIGINT"),
    (EXIT_CLOCK, "doctor: this VM's clock is off from the function's (time sync)"),
)


class ClientError(Exception):
    """A failure with a one-line reason; `exit_code` says which row of EXIT_TABLE it is.

    ClientError
     +-- ConfigError        settings missing or invalid               EXIT_CONFIG
     +-- MetadataError      IMDS instance metadata unusable           EXIT_METADATA
     +-- TokenError         no managed-identity token                 EXIT_NO_TOKEN
     +-- UnreachableError   no usable answer from the function        EXIT_UNREACHABLE
     +-- AuthError          401 / 403 from the function               EXIT_AUTH
     +-- RejectedError      any other 4xx from the function           EXIT_REJECTED
     +-- MoveFailed         the request finished as failed            EXIT_FAILED
     +-- TimeoutReached     the deadline came first                   EXIT_TIMEOUT
     +-- Interrupted        SIGTERM / SIGINT                          EXIT_INTERRUPTED
     +-- ClockSkew          this VM's clock is off (doctor)           EXIT_CLOCK
    """

    exit_code = EXIT_ERROR


class ConfigError(ClientError):
    """Settings are missing or invalid, or a file named in them is unusable."""

    exit_code = EXIT_CONFIG


class MetadataError(ClientError):
    """Instance metadata could not be read or parsed."""

    exit_code = EXIT_METADATA


class TokenError(ClientError):
    """IMDS gave no token: no identity on the VM, or it kept failing."""

    exit_code = EXIT_NO_TOKEN


class UnreachableError(ClientError):
    """The function gave no usable answer (network, TLS, 429/5xx) within the retries."""

    exit_code = EXIT_UNREACHABLE


class AuthError(ClientError):
    """The function answered 401 or 403."""

    exit_code = EXIT_AUTH


class RejectedError(ClientError):
    """The function answered another 4xx: nothing was queued."""

    exit_code = EXIT_REJECTED


class MoveFailed(ClientError):
    """The request ran and failed."""

    exit_code = EXIT_FAILED


class TimeoutReached(ClientError):
    """The command's deadline passed first (or the request expired in the queue)."""

    exit_code = EXIT_TIMEOUT


class Interrupted(ClientError):
    """SIGTERM or SIGINT arrived (the cluster gave up on us)."""

    exit_code = EXIT_INTERRUPTED


class ClockSkew(ClientError):
    """This VM's clock is too far from the function's (doctor)."""

    exit_code = EXIT_CLOCK


class TransportError(Exception):
    """No HTTP answer at all (refused, reset, timed out, TLS). Internal: callers translate it."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        Exception.__init__(self, message)
        self.permanent = permanent  # e.g. certificate verification: retrying will not help


class UsageError(Exception):
    """Bad command line (raised by the argument parser instead of exiting)."""


# Seams for tests: the unit tests replace these with a fake clock.
_monotonic = time.monotonic
_sleep = time.sleep


# --------------------------------------------------------------------------------------------
# Helpers: settings


def _parse_value(param: Param, raw: str, origin: str) -> "Any":
    """Turn a raw string from a flag, the environment or the file into a value, or raise."""
    text = raw.strip()
    where = f"{param.name} (from {origin})"
    if param.kind == "bool":
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ConfigError(f"{where}: expected yes or no, got {raw!r}")
    if param.kind == "seconds":
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected seconds, got {raw!r}") from None
        if not value >= 0 or value == float("inf"):
            raise ConfigError(f"{where}: expected a non-negative number, got {raw!r}")
        return value
    if param.kind == "ip":
        address = normalize_ip(text)
        if address is None:
            raise ConfigError(f"{where}: not an IP address: {raw!r}")
        return address
    if param.kind == "url":
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}: expected an http(s) URL, got {raw!r}")
        if parts.query or parts.fragment:
            raise ConfigError(f"{where}: no query or fragment allowed: {raw!r}")
        return text.rstrip("/")
    if not text:
        raise ConfigError(f"{where}: empty value")
    return text


def _read_config_file(path: str, explicit: bool) -> "Dict[str, str]":
    """Read the [ipmover] section. A missing default file is fine; a named one must exist."""
    if not os.path.exists(path):
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    except configparser.Error as err:
        message = " ".join(str(err).split())
        raise ConfigError(f"config file {path}: {message}") from None
    if not parser.has_section(CONFIG_SECTION):
        raise ConfigError(f"config file {path} has no [{CONFIG_SECTION}] section")
    values = dict(parser.items(CONFIG_SECTION))
    unknown = sorted(set(values) - set(PARAM_BY_NAME))
    if unknown:  # a typo ("ulr") would otherwise silently fall back to a default
        raise ConfigError(
            "config file {}: unknown key(s) {}; known: {}".format(
                path, ", ".join(unknown), ", ".join(sorted(PARAM_BY_NAME))
            )
        )
    return values


def load_settings(flags: "Dict[str, Any]", environ: "Dict[str, str]") -> "Dict[str, Any]":
    """Merge flags > IPMOVER_* environment > config file > defaults, parse every value."""
    path = flags.get("config") or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG
    explicit = bool(flags.get("config") or environ.get(ENV_PREFIX + "CONFIG"))
    from_file = _read_config_file(path, explicit)
    settings: Dict[str, Any] = {"config": path}
    for param in PARAMS:
        env_name = ENV_PREFIX + param.name.upper()
        if flags.get(param.name) is not None:
            value = flags[param.name]
            settings[param.name] = (
                value if isinstance(value, bool) else _parse_value(param, str(value), "flag")
            )
        elif environ.get(env_name):
            settings[param.name] = _parse_value(param, environ[env_name], env_name)
        elif param.name in from_file:
            settings[param.name] = _parse_value(param, from_file[param.name], path)
        else:
            settings[param.name] = param.default
    return settings


def validate_settings(settings: "Dict[str, Any]", command: str) -> None:
    """Raise ConfigError unless the settings let `command` run."""
    missing = [name for name in REQUIRED[command] if not settings.get(name)]
    if missing:
        raise ConfigError(
            "missing setting(s): {} (set them in {}, as --{} or as {}{})".format(
                ", ".join(missing),
                settings["config"],
                missing[0].replace("_", "-"),
                ENV_PREFIX,
                missing[0].upper(),
            )
        )
    timeout = settings["timeout"]
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError(f"timeout must be more than 0 and at most {MAX_TIMEOUT:.0f} s")
    if not 0 < settings["poll_interval"] <= 60:
        raise ConfigError("poll_interval must be more than 0 and at most 60 s")
    if settings["retry_backoff"] > 60:
        raise ConfigError("retry_backoff must be at most 60 s")
    url = settings.get("url")
    if url and "url" in REQUIRED[command]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            # A bearer token over plain http to another host can be read on the way.
            raise ConfigError(
                f"refusing to send a token over plain http to {parts.hostname}: use https"
            )
    ca_file = settings.get("ca_file")
    if ca_file and not os.access(ca_file, os.R_OK):
        raise ConfigError(f"ca_file {ca_file} is not readable")


def _is_loopback(host: str) -> bool:
    address = normalize_ip(host)
    return host == "localhost" or address == "::1" or (address or "").startswith("127.")


def api_base(url: str) -> str:
    """The v1 API root under the configured URL (which may or may not already end in /api/v1)."""
    url = url.rstrip("/")
    return url if url.endswith(API_PATH) else url + API_PATH


def cluster_context(environ: "Dict[str, str]", pairs: "List[str]") -> "Dict[str, str]":
    """The request's `context`: EXPRESSCLUSTER's CLP_* variables, then --context KEY=VALUE."""
    context: Dict[str, str] = {}
    for env_name, key in CLUSTER_CONTEXT_ENV:
        if environ.get(env_name):
            context[key] = environ[env_name]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not CONTEXT_KEY_RE.match(key):
            raise UsageError(f"--context expects KEY=VALUE, got {pair!r}")
        context[key] = value
    return context


# --------------------------------------------------------------------------------------------
# Helpers: time


class Deadline:
    """The command's time budget, measured on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = _monotonic()
        self.end = self.start + seconds
        wall = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        # Whole seconds, rounded down: the function may expire us a moment early, never late.
        self.rfc3339 = wall.strftime("%Y-%m-%dT%H:%M:%SZ")

    def elapsed(self) -> float:
        return _monotonic() - self.start

    def remaining(self) -> float:
        return self.end - _monotonic()


def parse_rfc3339(text: "Any") -> "Optional[datetime.datetime]":
    """Parse an RFC 3339 timestamp (3.6 has no fromisoformat); None when absent or malformed."""
    match = RFC3339_RE.match(text) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = float(match.group(7) or 0)
    zone = match.group(8) or "Z"
    offset = datetime.timedelta(0)
    if zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    moment += datetime.timedelta(seconds=fraction) - offset
    return moment.replace(tzinfo=datetime.timezone.utc)


def _backoff(first: float, attempt: int) -> float:
    """Pause before retry number `attempt` (1-based): first, 2*first, 4*first ... capped."""
    return min(BACKOFF_MAX, first * (2 ** (attempt - 1)))


def _retry_after(headers: "Any") -> float:
    """Seconds from a Retry-After header given in seconds; 0 when absent or a date."""
    try:
        return max(0.0, float(headers.get("retry-after", "")))  # either kind of headers
    except (TypeError, ValueError, AttributeError):
        return 0.0


# --------------------------------------------------------------------------------------------
# Helpers: HTTP


def normalize_ip(text: str) -> "Optional[str]":
    """The canonical form of an IPv4/IPv6 address ('10.5.0.110'), or None when it is not one.
    (socket rather than ipaddress: one import less at start-up.)"""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except (OSError, ValueError):
            continue
    return None


def plain_http_get(
    url: str, headers: "Dict[str, str]", timeout: float
) -> "Tuple[int, Dict[str, str], bytes]":
    """GET over plain http with a bare socket, for IMDS: never through a proxy, and without
    importing http.client / urllib.request. Header names come back in lower case. Raises
    TransportError when there is no complete answer."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TransportError(f"instance metadata must be plain http: {url}", permanent=True)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in sorted(headers.items())]
    ends = time.monotonic() + timeout
    chunks: List[bytes] = []
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            while True:
                sock.settimeout(max(0.01, ends - time.monotonic()))
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as err:
        raise TransportError(err.strerror or str(err) or type(err).__name__) from err
    return parse_http_response(b"".join(chunks))


def parse_http_response(raw: bytes) -> "Tuple[int, Dict[str, str], bytes]":
    """Split a complete HTTP/1.x answer (the server closed the connection) into status,
    lower-cased headers and body; undoes chunked transfer coding. Raises TransportError."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    words = status_line.split()
    if (
        not separator
        or len(words) < 2
        or not words[0].startswith("HTTP/")
        or not words[1].isdigit()
    ):
        raise TransportError("no complete HTTP answer" + (": " + status_line[:60] if raw else ""))
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            pieces = []
            while True:
                size_line, _, body = body.partition(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                if len(body) < size + 2:
                    raise ValueError("truncated chunk")
                pieces.append(body[:size])
                body = body[size + 2 :]
            body = b"".join(pieces)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if len(body) < length:
                raise ValueError("connection closed mid-answer")
            body = body[:length]
    except ValueError as err:
        raise TransportError(f"malformed HTTP answer: {err}") from None
    return int(words[1]), headers, body


def build_opener(ca_file: "Optional[str]") -> "Any":
    """A urllib opener for the function app: system (or `ca_file`) trust, no redirects."""
    import ssl  # lazily, like urllib.request: see the imports at the top
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """urllib would forward our Authorization header to wherever a redirect points."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None

    handlers: List[Any] = [NoRedirect()]
    if ca_file:  # else urllib's default context: the system store, loaded only if https is used
        handlers.append(
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file))
        )
    return urllib.request.build_opener(*handlers)


def _describe_transport(err: BaseException) -> "Tuple[str, bool]":
    """One line for an exception that left us without an HTTP answer, and whether it is final."""
    import ssl
    import urllib.error

    reason = getattr(err, "reason", err) if isinstance(err, urllib.error.URLError) else err
    cert_failed = isinstance(reason, ssl.CertificateError) or (
        isinstance(reason, ssl.SSLError)
        and getattr(reason, "reason", "") == "CERTIFICATE_VERIFY_FAILED"
    )
    if cert_failed:
        return f"TLS certificate verification failed: {reason} (see ca_file)", True
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror, False
    text = str(reason) or type(reason).__name__
    return " ".join(text.split()), False


def http_call(
    opener: "Any",
    method: str,
    url: str,
    headers: "Dict[str, str]",
    body: "Optional[bytes]",
    timeout: float,
) -> "Tuple[int, Any, bytes]":
    """One HTTP exchange with the function app through urllib (https, proxies from the
    environment). Returns (status, headers, body) for any status; raises TransportError when
    there is no answer at all."""
    import http.client
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with opener.open(request, timeout=max(0.1, timeout)) as response:
            return response.getcode(), response.headers, response.read()
    except urllib.error.HTTPError as err:
        try:
            data = err.read()
        except (OSError, http.client.HTTPException):
            data = b""
        return err.code, err.headers, data
    except (OSError, http.client.HTTPException, ssl.CertificateError) as err:
        message, permanent = _describe_transport(err)
        raise TransportError(message, permanent) from err


def _json_or_none(data: bytes) -> "Any":
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def describe_error(status: int, data: bytes) -> str:
    """One line from an error answer: '403 not_a_member: server03 is not a member ...'."""
    document = _json_or_none(data)
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):  # the function's shape
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    elif isinstance(error, str):  # IMDS's shape
        code, message = error, str(document.get("error_description", ""))
    else:
        code = HTTP_REASONS.get(status, "")
        message = " ".join(data[:200].decode("utf-8", "replace").split())
    parts = [str(status)]
    if code:
        parts.append(code + (":" if message else ""))
    if message:
        parts.append(" ".join(message.split()))
    return " ".join(parts)


def jwt_claims(token: str) -> "Optional[Dict[str, Any]]":
    """The claims of a JWT, decoded but NOT verified (the function verifies them): for doctor
    and for an operator token's expiry. None when it is not a JWT."""
    import base64
    import binascii

    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")).decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def read_operator_token(path: str, stdin: "Any") -> str:
    """An operator's own token from `path` ("-": stdin): a bare JWT, or the JSON that
    `az account get-access-token` prints (its accessToken). Never printed. Raises ConfigError
    (unreadable, no token in it), AuthError (already expired)."""
    where = "stdin" if path == "-" else path
    try:
        if path == "-":
            text = stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"token_file {where}: {getattr(err, 'strerror', None) or err}") from None
    text = text.strip()
    token = text
    if text.startswith("{"):
        document = _json_or_none(text.encode("utf-8"))
        token = ""
        if isinstance(document, dict):
            token = str(document.get("accessToken") or document.get("access_token") or "")
    claims = jwt_claims(token) if token else None
    if claims is None:
        raise ConfigError(
            f"token_file {where} holds no token: expected a JWT or the JSON of "
            "`az account get-access-token`"
        )
    expires = claims.get("exp")
    if isinstance(expires, (int, float)) and expires <= time.time():
        raise AuthError(
            f"the token in {where} expired at {_utc_text(float(expires))}; "
            "get a new one (az account get-access-token)"
        )
    return token


def _utc_text(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def short_resource(resource_id: "Any") -> str:
    """'.../networkInterfaces/server01-nic' -> 'server01-nic'."""
    return str(resource_id).rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


# --------------------------------------------------------------------------------------------
# Helpers: the session (settings, budget, output, token cache)


class Session:
    """What one command works with: settings, its deadline, HTTP openers, output, the token."""

    def __init__(
        self,
        settings: "Dict[str, Any]",
        out: "Any",
        err: "Any",
        quiet: bool = False,
        verbose: bool = False,
    ) -> None:
        self.settings = settings
        self.out = out
        self.err = err
        self.quiet = quiet
        self.verbose = verbose
        self.deadline = Deadline(settings["timeout"])
        self._function_opener: Any = None
        self._token: Optional[str] = None
        self._token_valid_until = 0.0
        self.token_lifetime = 0.0  # seconds, as IMDS said when it issued the token
        # An operator command with token_file set: call the function with that token.
        self.use_token_file = False
        self.where = ""  # where the current request stands, for timeout / interrupt messages

    # Output ---------------------------------------------------------------------------------

    def progress(self, text: str) -> None:
        """One line for the cluster's log, stamped with the time since the command started."""
        if not self.quiet:
            self.out.write(f"[{self.deadline.elapsed():6.2f}s] {text}\n")
            self.out.flush()  # the cluster reads a pipe: do not let lines sit in a buffer

    def debug(self, text: str) -> None:
        if self.verbose:
            self.err.write(f"{PROG}: {text}\n")
            self.err.flush()

    # HTTP -----------------------------------------------------------------------------------

    def function_opener(self) -> "Any":
        if self._function_opener is None:
            self._function_opener = build_opener(self.settings["ca_file"])
        return self._function_opener

    def _pause(self, seconds: float, why: str) -> bool:
        """Sleep before a retry unless that would overrun the deadline; False means give up."""
        if seconds >= self.deadline.remaining():
            return False
        self.debug(f"retrying in {seconds:.2f}s: {why}")
        _sleep(seconds)
        return True

    def imds_get(self, path: str, query: "Dict[str, str]") -> "Tuple[int, bytes]":
        """GET from IMDS following Azure's retry guidance; returns the final (status, body):
        200, an answer not worth retrying, or the last retryable one when retries ran out.
        Raises TransportError when IMDS never answered."""
        url = "{}{}?{}".format(
            self.settings["imds_url"], path, urllib.parse.urlencode(sorted(query.items()))
        )
        backoff = self.settings["retry_backoff"]
        first = _monotonic()
        tries = 0  # every attempt: drives the backoff
        counted = 0  # attempts that count against IMDS_MAX_ATTEMPTS (410s are bounded by time)
        while True:
            tries += 1
            budget = min(IMDS_HTTP_TIMEOUT, self.deadline.remaining())
            if budget <= 0:
                raise TransportError("no time left to ask instance metadata")
            try:
                status, headers, data = plain_http_get(url, {"Metadata": "true"}, budget)
            except TransportError as err:
                self.debug(f"GET {path} -> {err}")
                counted += 1
                if (
                    err.permanent
                    or counted >= IMDS_MAX_ATTEMPTS
                    or not self._pause(_backoff(backoff, tries), str(err))
                ):
                    raise
                continue
            self.debug(f"GET {path} -> {status}")
            if status not in IMDS_RETRY_STATUSES:
                return status, data
            pause = max(_backoff(backoff, tries), _retry_after(headers))
            if status == 410:
                left = first + IMDS_GONE_BUDGET - _monotonic()
                if left <= 0:
                    return status, data
                pause = min(pause, left)  # the last try lands at the end of the 70 s
            else:
                counted += 1
                if counted >= IMDS_MAX_ATTEMPTS:
                    return status, data
            if not self._pause(pause, describe_error(status, data)):
                return status, data

    def token(self) -> str:
        """A bearer token for the function from the VM's managed identity, cached in-process.

        Not cached on disk: each command fetches one (IMDS itself caches tokens), and a token
        file would be a day-long credential lying on the node. Raises TokenError."""
        if self._token and _monotonic() < self._token_valid_until:
            return self._token
        if self.use_token_file and self.settings.get("token_file"):
            self._token = read_operator_token(self.settings["token_file"], sys.stdin)
            self._token_valid_until = float("inf")  # one command; its expiry is checked above
            self.debug("using the operator token from " + self.settings["token_file"])
            return self._token
        query = {"api-version": IMDS_TOKEN_API_VERSION, "resource": self.settings["audience"]}
        if self.settings.get("client_id"):
            query["client_id"] = self.settings["client_id"]
        try:
            status, data = self.imds_get(IMDS_TOKEN_PATH, query)
        except TransportError as err:
            raise TokenError(f"instance metadata unreachable for a token: {err}") from None
        document = _json_or_none(data)
        if status != 200:
            reason = describe_error(status, data)
            if status == 400 and "identity not found" in reason.lower():
                raise TokenError(f"no managed identity on this VM (IMDS: {reason})")
            raise TokenError(f"IMDS issued no token: {reason}")
        if not isinstance(document, dict) or not document.get("access_token"):
            raise TokenError("IMDS answered without an access_token")
        try:
            lifetime = float(document.get("expires_in", 0))
        except (TypeError, ValueError):
            lifetime = 0.0
        self._token = str(document["access_token"])
        self._token_valid_until = _monotonic() + lifetime - TOKEN_REFRESH_MARGIN
        self.token_lifetime = lifetime
        self.debug("token for {} valid {:.0f}s".format(self.settings["audience"], lifetime))
        return self._token

    def call(
        self,
        method: str,
        path: str,
        body: "Optional[Dict[str, Any]]" = None,
        attempts: int = FUNCTION_MAX_ATTEMPTS,
    ) -> "Dict[str, Any]":
        """Call the function's API and return its JSON object.

        Retries connection errors, 429 and 5xx (same body, so a POST keeps its requestId and
        cannot queue a second move); never a 4xx. Raises UnreachableError, AuthError,
        RejectedError, TimeoutReached (400 deadline_passed), ConfigError (a redirect),
        ClientError (a malformed answer), TokenError."""
        url = api_base(self.settings["url"]) + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        started = _monotonic()
        last = ""
        for attempt in range(1, attempts + 1):
            budget = min(FUNCTION_HTTP_TIMEOUT, self.deadline.remaining())
            if budget <= 0:
                break
            headers = {
                "Authorization": "Bearer " + self.token(),
                "Accept": "application/json",
                "User-Agent": f"{PROG}/{VERSION} python/{sys.version.split()[0]}",
            }
            if data is not None:
                headers["Content-Type"] = "application/json"
            try:
                status, answer_headers, answer = http_call(
                    self.function_opener(), method, url, headers, data, budget
                )
            except TransportError as err:
                self.debug(f"{method} {url} -> {err}")
                last = f"cannot reach {url}: {err}"
                if err.permanent:
                    raise UnreachableError(last) from None
                pause = _backoff(self.settings["retry_backoff"], attempt)
            else:
                self.debug(f"{method} {url} -> {status}")
                if 200 <= status < 300:
                    document = _json_or_none(answer)
                    if not isinstance(document, (dict, list)):
                        raise ClientError(f"{method} {url}: answer is not JSON")
                    return document
                reason = describe_error(status, answer)
                if 300 <= status < 400:
                    raise ConfigError(
                        "the function redirected {} to {}; set url to the final address".format(
                            url, answer_headers.get("Location", "?")
                        )
                    )
                if status in (401, 403):
                    raise AuthError("the function refused this VM: " + reason)
                if status == 400 and "deadline_passed" in reason:
                    raise TimeoutReached(reason + " (is this node's clock right?)")
                if status != 429 and status < 500:
                    raise RejectedError("the function rejected the request: " + reason)
                last = "the function is unavailable: " + reason
                pause = max(
                    _backoff(self.settings["retry_backoff"], attempt), _retry_after(answer_headers)
                )
            if attempt == attempts or not self._pause(pause, last):
                break
        if not last:
            raise TimeoutReached("no time left to call the function")
        raise UnreachableError(f"{last} (gave up after {_monotonic() - started:.1f}s)")

    def ips_on_this_vm(self) -> "List[str]":
        """This VM's private IPs per IMDS /metadata/instance/network. Raises MetadataError."""
        try:
            status, data = self.imds_get(
                IMDS_NETWORK_PATH, {"api-version": IMDS_NETWORK_API_VERSION}
            )
        except TransportError as err:
            raise MetadataError(f"instance metadata unreachable: {err}") from None
        if status != 200:
            raise MetadataError(f"instance metadata: {describe_error(status, data)}")
        document = _json_or_none(data)
        try:
            return [
                normalize_ip(str(address["privateIpAddress"]))
                for interface in document["interface"]
                for address in interface["ipv4"]["ipAddress"]
                if address.get("privateIpAddress")
            ]
        except (KeyError, TypeError, ValueError):
            raise MetadataError("instance metadata: unexpected network document") from None


# --------------------------------------------------------------------------------------------
# Helpers: following a move request


class StepPrinter:
    """Prints a line whenever the request's status, its place in the queue or one of its
    steps changes, and keeps `session.where` current for timeout and interrupt messages."""

    def __init__(self, session: Session, request_id: str) -> None:
        self.session = session
        self.request_id = request_id
        self.status = ""
        self.position = ""  # last known place in the queue, e.g. "at position 2 of 3"
        self.steps: Dict[int, Tuple[str, str, str]] = {}

    def update(self, record: "Dict[str, Any]") -> None:
        status = str(record.get("status", ""))
        position = self.position
        if status == "queued" and self.session.deadline.remaining() > 0:
            # Ask again each poll while queued: the log then shows the queue moving.
            position = queue_position(self.session, self.request_id) or position
        if (status, position) != (self.status, self.position):
            self.status, self.position = status, position
            self.session.where = self.where(record)  # before printing: a SIGTERM may follow
            if status not in TERMINAL_STATUSES:
                self.session.progress(" ".join(p for p in (status, position) if p))
        steps = record.get("steps") if isinstance(record.get("steps"), list) else []
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            seen = (
                str(step.get("name", "?")),
                short_resource(step.get("nic")),
                str(step.get("status", "")),
            )
            if self.steps.get(index) != seen:
                self.steps[index] = seen
                line = " ".join(part for part in seen if part)
                error = step.get("error")
                if isinstance(error, dict) and error.get("message"):
                    line += ": " + str(error["message"])
                self.session.progress(line)
        self.session.where = self.where(record)

    def where(self, record: "Dict[str, Any]") -> str:
        """'queued at position 2 of 3' / 'running step add_ip_config (server02-nic)'."""
        status = str(record.get("status", "unknown"))
        if status == "queued" and self.position:
            return "queued " + self.position
        step = running_step(record) if status == "running" else ""
        return status + (" step " + step if step else "")


def running_step(record: "Dict[str, Any]") -> str:
    """'add_ip_config (server02-nic)': the step running now, else the last one known."""
    steps = [s for s in record.get("steps") or [] if isinstance(s, dict)]
    current = [s for s in steps if s.get("status") == "running"] or steps[-1:]
    if not current:
        return ""
    nic = short_resource(current[0].get("nic"))
    return str(current[0].get("name", "?")) + (f" ({nic})" if nic else "")


def queue_position(session: Session, request_id: str) -> str:
    """'at position 2 of 3' from GET /ips/{ip} (best effort: '' when unknown)."""
    try:
        state = session.call("GET", "/ips/" + session.settings["ip"], attempts=1)
    except Interrupted:
        raise
    except ClientError:
        return ""
    lock = state.get("lock") if isinstance(state, dict) else None
    queue = lock.get("queue") if isinstance(lock, dict) else None
    if not isinstance(queue, list):
        return ""
    for index, entry in enumerate(queue):
        entry_id = entry.get("requestId", entry.get("id")) if isinstance(entry, dict) else entry
        if entry_id == request_id:
            return f"at position {index + 1} of {len(queue)}"
    return ""


def follow_request(session: Session, request_id: str, first: "Dict[str, Any]") -> "Dict[str, Any]":
    """Poll GET /requests/{id} until it is terminal; print step changes. Returns the final
    record when succeeded; raises MoveFailed, TimeoutReached, AuthError, RejectedError."""
    printer = StepPrinter(session, request_id)
    record = first
    printer.update(record)
    unavailable_since: Optional[float] = None
    while True:
        if session.deadline.remaining() <= 0:
            where = printer.where(record)
            if unavailable_since is not None:
                where += f"; the function has not answered since {unavailable_since:.1f}s"
            raise TimeoutReached(
                f"timed out after {session.deadline.elapsed():.1f}s; "
                f"request {request_id} was {where}"
            )
        try:
            record = session.call(
                "GET", "/requests/" + urllib.parse.quote(request_id, safe=""), attempts=1
            )
        except (UnreachableError, TimeoutReached) as err:
            # A poll that fails is not a failed move: keep asking until the deadline.
            if unavailable_since is None:
                unavailable_since = session.deadline.elapsed()
                session.progress(f"status unavailable, still polling: {err}")
        else:
            if unavailable_since is not None:
                session.progress("status available again")
                unavailable_since = None
            printer.update(record)
        status = record.get("status")
        if status == "succeeded":
            return record
        if status == "failed":
            error = record.get("error") if isinstance(record.get("error"), dict) else {}
            step = running_step(record)
            raise MoveFailed(
                "the move failed{}: {}".format(
                    " at step " + step if step else "",
                    ": ".join(str(v) for v in (error.get("code"), error.get("message")) if v)
                    or "no reason given",
                )
            )
        if status == "expired":
            raise TimeoutReached(
                f"request {request_id} expired in the queue: "
                "its deadline passed before it could run"
            )
        _sleep(max(0.0, min(session.settings["poll_interval"], session.deadline.remaining())))


def wait_for_metadata(session: Session, present: bool) -> None:
    """Poll IMDS until the IP is (present=True) or is not (False) on this VM. IMDS errors are
    retried until the deadline. Raises TimeoutReached."""
    ip = session.settings["ip"]
    last_error = ""
    while True:
        try:
            if (ip in session.ips_on_this_vm()) == present:
                session.progress(
                    "{} {} this VM per instance metadata".format(
                        ip, "is on" if present else "is off"
                    )
                )
                return
            last_error = ""
        except MetadataError as err:
            last_error = str(err)
        pause = min(session.settings["poll_interval"], session.deadline.remaining())
        if pause <= 0:
            raise TimeoutReached(
                "the function reports the move done, but after {:.1f}s instance metadata "
                "still shows {} {} this VM{}".format(
                    session.deadline.elapsed(),
                    ip,
                    "not on" if present else "on",
                    " (" + last_error + ")" if last_error else "",
                )
            )
        _sleep(pause)


def format_table(rows: "List[List[str]]", headers: "List[str]") -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    header = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    return "\n".join([header, *lines]) + "\n"


def history_records(document: "Any") -> "List[Dict[str, Any]]":
    """The list of records, whether the answer is a bare list or wraps it in an object."""
    if isinstance(document, list):
        return [r for r in document if isinstance(r, dict)]
    if isinstance(document, dict):
        for key in ("records", "history", "items", "requests", "value"):
            if isinstance(document.get(key), list):
                return [r for r in document[key] if isinstance(r, dict)]
    raise ClientError("history: unexpected answer from the function")


def history_row(record: "Dict[str, Any]") -> "List[str]":
    created = parse_rfc3339(record.get("createdAt"))
    finished = parse_rfc3339(record.get("finishedAt"))
    took = f"{(finished - created).total_seconds():.1f}s" if created and finished else "-"
    when = finished or created
    caller = record.get("caller") if isinstance(record.get("caller"), dict) else {}
    context = record.get("context") if isinstance(record.get("context"), dict) else {}
    error = record.get("error") if isinstance(record.get("error"), dict) else {}
    from_nics = record.get("fromNics") if isinstance(record.get("fromNics"), list) else []
    return [
        when.strftime("%Y-%m-%d %H:%M:%S") if when else "-",
        str(record.get("action", "-")),
        str(record.get("status", "-")),
        str(caller.get("member") or short_resource(caller.get("vm")) or "-"),
        str(context.get("event", "-")),
        ",".join(short_resource(n) for n in from_nics) or "-",
        short_resource(record.get("toNic")) or "-",
        took,
        str(error.get("code") or "-"),
        str(record.get("requestId", "-")),
        split_brain_note(record) or "-",
    ]


def _split_brain(record: "Dict[str, Any]") -> "Dict[str, Any]":
    split = record.get("splitBrain")
    return split if isinstance(split, dict) else {}


def split_brain_note(record: "Dict[str, Any]") -> str:
    """The history table's NOTE: 'split-brain? 1.5s after server01 acquired it'."""
    split = _split_brain(record)
    if not split:
        return ""
    try:
        seconds = float(split.get("secondsAfter") or 0)
    except (TypeError, ValueError):
        seconds = 0.0
    taken_from = split.get("tookFrom") or short_resource(split.get("nic")) or "?"
    return f"split-brain? {seconds:.1f}s after {taken_from} acquired it"


def split_brain_text(ip: str, record: "Dict[str, Any]") -> str:
    """One line for a record that took the IP from a member that had just acquired it."""
    split = _split_brain(record)
    if not split:
        return ""
    caller = record.get("caller") if isinstance(record.get("caller"), dict) else {}
    context = record.get("context") if isinstance(record.get("context"), dict) else {}
    try:
        seconds = float(split.get("secondsAfter") or 0)
    except (TypeError, ValueError):
        seconds = 0.0
    return (
        "{member} took {ip} from {loser} {seconds:.1f}s after {loser} acquired it "
        "(request {earlier}; this one {request}, event {event}){both}: possible split brain, "
        "the group may be active on both nodes".format(
            member=caller.get("member") or "?",
            ip=ip,
            loser=split.get("tookFrom") or short_resource(split.get("nic")) or "?",
            seconds=seconds,
            earlier=split.get("acquiredBy", "?"),
            request=record.get("requestId", "?"),
            event=context.get("event", "-"),
            both=", both queued at once" if split.get("overlapped") else "",
        )
    )


def explain_absence(session: Session) -> str:
    """Why the IP is not here, from the newest finished move in its history (one call, no
    retry: a monitor must stay quick). Never raises: a failure is the explanation's text."""
    ip = session.settings["ip"]
    if not (session.settings.get("url") and session.settings.get("audience")):
        return f"cannot ask the function who has {ip} (url and audience are not set)"
    query = urllib.parse.urlencode({"limit": EXPLAIN_HISTORY_LIMIT})
    try:
        document = session.call("GET", f"/ips/{ip}/history?{query}", attempts=1)
        records = history_records(document)
    except Interrupted:
        raise
    except ClientError as err:
        return f"cannot ask the function who has {ip}: {err}"
    latest = next((r for r in records if r.get("status") == "succeeded"), None)
    if latest is None:
        return f"no finished move of {ip} in its history"
    warning = split_brain_text(ip, latest)
    if warning:
        return warning
    caller = latest.get("caller") if isinstance(latest.get("caller"), dict) else {}
    context = latest.get("context") if isinstance(latest.get("context"), dict) else {}
    return "last move of {}: {} by {} at {} (event {}, request {})".format(
        ip,
        latest.get("action", "?"),
        caller.get("member") or "?",
        latest.get("finishedAt", "?"),
        context.get("event", "-"),
        latest.get("requestId", "?"),
    )


# --------------------------------------------------------------------------------------------
# One function per command. Each returns an exit code for a normal answer, raises otherwise.


def _move(
    session: Session,
    action: str,
    args: "argparse.Namespace",
    target: "Optional[str]" = None,
    force: bool = False,
) -> int:
    ip = session.settings["ip"]
    import uuid  # lazily: see the imports at the top

    request_id = args.request_id or str(uuid.uuid4())
    body: Dict[str, Any] = {"requestId": request_id, "deadline": session.deadline.rfc3339}
    context = cluster_context(dict(os.environ), args.context or [])
    if context:
        body["context"] = context
    if target:
        body["target"] = target
    if force:
        body["force"] = True
    answer = session.call("POST", f"/ips/{ip}/{action}", body)
    request_id = str(answer.get("requestId") or request_id)
    label = f"{action} {ip}" + (f" to {target}" if target else "")
    session.progress(f"{label}: request {request_id}")
    record = follow_request(session, request_id, answer)
    session.progress(f"{label} succeeded")
    warning = split_brain_text(ip, record)
    if warning:
        # The winner's log says it too; the loser's monitor (status --explain) says it there.
        session.progress("warning: " + warning)
    wait = session.settings["wait_imds"]
    if wait is None:
        wait = action == "acquire" and not target
    if wait:
        wait_for_metadata(session, present=action == "acquire")
    return EXIT_OK


def cmd_acquire(session: Session, args: "argparse.Namespace") -> int:
    """Put the IP on this VM; done when the function says so (and IMDS agrees, by default)."""
    return _move(session, "acquire", args)


def cmd_release(session: Session, args: "argparse.Namespace") -> int:
    """Take the IP off this VM; never touches another VM's NIC."""
    return _move(session, "release", args)


def cmd_status(session: Session, args: "argparse.Namespace") -> int:
    """Is the IP on this VM? Instance metadata only: no token, no call to the function --
    unless --explain and the IP is not here: then one read of the IP's history says who
    took it (and whether that looks like a split brain)."""
    ip = session.settings["ip"]
    if ip in session.ips_on_this_vm():
        if not args.quiet:
            session.out.write(f"{ip} is on this VM\n")
        return EXIT_OK
    if not args.quiet:
        session.out.write(f"{ip} is not on this VM\n")
    if args.explain:
        # Printed even with --quiet: asking for it is the point (the cluster's monitor logs it).
        session.out.write(explain_absence(session) + "\n")
        session.out.flush()
    return EXIT_NOT_HERE


def cmd_move(session: Session, args: "argparse.Namespace") -> int:
    """Operators: move the IP to the member named by --target (the API checks the app role)."""
    return _move(session, "acquire", args, target=args.target, force=args.force)


def cmd_history(session: Session, args: "argparse.Namespace") -> int:
    """Print the IP's audit records, newest first."""
    query = urllib.parse.urlencode({"limit": args.limit})
    document = session.call("GET", "/ips/{}/history?{}".format(session.settings["ip"], query))
    records = history_records(document)
    if args.json:
        session.out.write(json.dumps(records, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    if not records:
        session.out.write("no finished requests for {}\n".format(session.settings["ip"]))
        return EXIT_OK
    headers = ["FINISHED (UTC)", "ACTION", "STATUS", "BY", "EVENT", "FROM", "TO", "TOOK"]
    headers += ["ERROR", "REQUEST", "NOTE"]
    session.out.write(format_table([history_row(r) for r in records], headers))
    return EXIT_OK


def cmd_check_config(session: Session, args: "argparse.Namespace") -> int:
    """Validate the settings without any network call; print them (never a token)."""
    for param in PARAMS:
        value = session.settings.get(param.name)
        shown = "-" if value is None else value
        session.out.write(f"{param.name} = {shown}\n")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# doctor: one line per check; the exit code is the first failure's (EXIT_TABLE)

DOCTOR_CHECKS = ("config", "imds", "token", "function", "clock", "claims", "read")


class Doctor:
    """Runs the checks in order, prints `ok`, `FAIL` or `skip` per check (a check whose
    prerequisite failed is skipped, saying which), and remembers the first failure."""

    def __init__(self, out: "Any") -> None:
        self.out = out
        self.first_failure: Optional[Tuple[str, ClientError]] = None
        self.not_passed: List[str] = []
        self.passed = 0

    def line(self, mark: str, name: str, text: str) -> None:
        self.out.write(f"{mark:<4} {name:<8} {text}\n")
        self.out.flush()

    def fail(self, name: str, error: "ClientError") -> None:
        self.line("FAIL", name, str(error))
        self.not_passed.append(name)
        if self.first_failure is None:
            self.first_failure = (name, error)

    def skip(self, name: str, why: str) -> None:
        self.line("skip", name, why)
        self.not_passed.append(name)

    def run(self, name: str, check: "Callable[[], str]", needs: "Tuple[str, ...]" = ()) -> bool:
        blocked = [n for n in needs if n in self.not_passed]
        if blocked:
            self.skip(name, f"needs {blocked[0]}")
            return False
        try:
            detail = check()
        except Interrupted:
            raise
        except ClientError as error:
            self.fail(name, error)
            return False
        self.line("ok", name, detail)
        self.passed += 1
        return True


def doctor_config_failed(out: "Any", error: "ClientError") -> None:
    """doctor's lines when the settings themselves are unusable: nothing else can run."""
    doctor = Doctor(out)
    doctor.fail("config", error)
    for name in DOCTOR_CHECKS[1:]:
        doctor.skip(name, "needs config")


def _check_claims(session: Session, seen: "Dict[str, Any]") -> str:
    """What the function will check in this VM's token, read (not verified) on the node: the
    audience the function says it accepts (its health answer), else the configured one."""
    audience = seen.get("audience") or session.settings["audience"]
    claims = jwt_claims(session.token()) or {}
    if not claims:
        raise AuthError("IMDS gave a token that is not a JWT")
    aud = claims.get("aud")
    if aud != audience:
        raise AuthError(
            f"the token's aud is {aud!r}, but the function accepts {audience!r}: "
            "set audience to what the function accepts (its auth.audience)"
        )
    oid = claims.get("oid")
    if not oid:
        raise AuthError("the token has no oid: the function cannot tell which member this is")
    if "scp" in claims or claims.get("idtyp", "app") != "app":
        raise AuthError(
            "not an app-only token (scp={!r}, idtyp={!r}): the function recognises members "
            "only by their managed identity's app-only token".format(
                claims.get("scp"), claims.get("idtyp")
            )
        )
    extra = ", xms_mirid " + short_resource(claims["xms_mirid"]) if claims.get("xms_mirid") else ""
    return (
        f"aud {aud}, oid {oid}, tid {claims.get('tid', '-')}, app-only "
        f"(idtyp {claims.get('idtyp', '-')}){extra}; the function must know oid as this "
        "VM's principalId"
    )


def _check_health(session: Session, seen: "Dict[str, Any]") -> str:
    """GET /health, anonymous (no token sent); keeps the answer's Date (for the clock check)
    and the audience the function accepts (for the claims check) in `seen`."""
    url = api_base(session.settings["url"]) + "/health"
    headers = {"Accept": "application/json", "User-Agent": f"{PROG}/{VERSION}"}
    budget = min(FUNCTION_HTTP_TIMEOUT, session.deadline.remaining())
    sent, started = time.time(), _monotonic()
    try:
        status, answer_headers, data = http_call(
            session.function_opener(), "GET", url, headers, None, budget
        )
    except TransportError as err:
        raise UnreachableError(f"cannot reach {url}: {err}") from None
    took = _monotonic() - started
    seen.update(sent=sent, received=time.time(), date=answer_headers.get("Date"))
    document = _json_or_none(data)
    if isinstance(document, dict) and isinstance(document.get("audience"), str):
        seen["audience"] = document["audience"]
    if 300 <= status < 400:
        raise ConfigError(
            "the function redirected {} to {}; set url to the final address".format(
                url, answer_headers.get("Location", "?")
            )
        )
    if status != 200 or not isinstance(document, dict) or document.get("status") != "ok":
        raise UnreachableError(f"{url} is not healthy: {describe_error(status, data)}")
    return f"{url}: ok ({took * 1000:.0f} ms)"


def _check_clock(clock: "Dict[str, Any]") -> str:
    """This VM's clock against the function's, from the HTTP Date of the health answer."""
    import email.utils

    try:
        date = email.utils.parsedate_to_datetime(clock.get("date") or "")
    except (TypeError, ValueError, IndexError):
        date = None
    if date is None:
        raise ClientError("the function's answer had no usable Date header to compare with")
    # Date is whole seconds: the function's clock read somewhere in [Date, Date + 1).
    theirs = date.timestamp() + 0.5
    ours = (clock["sent"] + clock["received"]) / 2
    skew = ours - theirs
    slack = 0.5 + (clock["received"] - clock["sent"]) / 2
    if abs(skew) > CLOCK_SKEW_MAX + slack:
        raise ClockSkew(
            "this VM's clock is {:.0f}s {} the function's (its HTTP Date): the deadlines this "
            "node sends would be off by as much; fix the time sync (chrony)".format(
                abs(skew), "ahead of" if skew > 0 else "behind"
            )
        )
    allowed = f"at most {CLOCK_SKEW_MAX:.0f}s allowed"
    return f"within {abs(skew):.0f}s of the function's (HTTP Date; {allowed})"


def _check_read(session: Session) -> str:
    """An authorized read: GET /ips/{ip}, what a member may read of its own cluster's IP."""
    ip = session.settings["ip"]
    state = session.call("GET", f"/ips/{ip}", attempts=1)
    if not isinstance(state, dict):
        raise ClientError(f"GET /ips/{ip}: unexpected answer")
    holders = state.get("holders") if isinstance(state.get("holders"), list) else []
    held = ", ".join(
        str(h.get("member") or short_resource(h.get("nic")) or "?")
        for h in holders
        if isinstance(h, dict)
    )
    lock = state.get("lock") if isinstance(state.get("lock"), dict) else {}
    queue = lock.get("queue") if isinstance(lock.get("queue"), list) else []
    return "GET /ips/{}: cluster {}, ip-config {}, on {}; lock {}{}".format(
        ip,
        state.get("cluster", "?"),
        state.get("ipConfigName", "?"),
        held or "no NIC",
        "held" if lock.get("holder") else "free",
        f", {len(queue)} waiting" if queue else "",
    )


def cmd_doctor(session: Session, args: "argparse.Namespace") -> int:
    """Check what a move needs, without moving anything: IMDS, a token and its claims, the
    function's health, the clock, an authorized read. Returns the first failure's code."""
    doctor = Doctor(session.out)
    settings = session.settings
    doctor.line(
        "ok",
        "config",
        "url {}, audience {}, ip {} ({})".format(
            settings["url"], settings["audience"], settings["ip"], settings["config"]
        ),
    )
    doctor.passed += 1
    ip = settings["ip"]

    def imds() -> str:
        ips = session.ips_on_this_vm()
        return "instance metadata answers; {} is {} this VM (private IPs: {})".format(
            ip, "on" if ip in ips else "not on", ", ".join(a for a in ips if a) or "none"
        )

    def token() -> str:
        session.token()
        who = " (client_id {})".format(settings["client_id"]) if settings["client_id"] else ""
        return "a token for {} from this VM's managed identity{}, valid {:.0f}s (not shown)".format(
            settings["audience"], who, session.token_lifetime
        )

    seen: Dict[str, Any] = {}  # from the health answer: Date, the audience it accepts
    doctor.run("imds", imds)
    doctor.run("token", token)
    if doctor.run("function", lambda: _check_health(session, seen)) and not seen.get("date"):
        doctor.skip("clock", "the function's answer had no Date header to compare with")
    else:
        doctor.run("clock", lambda: _check_clock(seen), needs=("function",))
    doctor.run("claims", lambda: _check_claims(session, seen), needs=("token",))
    doctor.run("read", lambda: _check_read(session), needs=("token", "function"))
    if doctor.first_failure is None:
        session.out.write(f"doctor: all {doctor.passed} checks passed\n")
        return EXIT_OK
    name, error = doctor.first_failure
    # main() prints the usual one-line reason on stderr and exits with the failure's code.
    raise type(error)(f"{name}: {error}")


def cmd_dry_run(session: Session, args: "argparse.Namespace") -> int:
    """Operators: the function's dry run of a cluster (reads ARM, changes nothing). Exit 0
    when every member was found and every move could be made, else 13."""
    cluster = urllib.parse.quote(args.cluster, safe="")
    report = session.call("GET", f"/clusters/{cluster}/dry-run")
    if args.json:
        session.out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        session.out.write(format_dry_run(report))
    problems = report.get("problems") if isinstance(report, dict) else None
    if problems:
        raise MoveFailed("dry run of {}: {}".format(args.cluster, "; ".join(map(str, problems))))
    return EXIT_OK


def format_dry_run(report: "Any") -> str:
    """The dry run as lines: members, access, then each IP and each move."""
    if not isinstance(report, dict):
        raise ClientError("dry-run: unexpected answer from the function")
    lines = [
        "cluster {} (resource group {}), read at {}".format(
            report.get("cluster"), report.get("resourceGroup"), report.get("readAt")
        )
    ]
    for member in report.get("members") or []:
        error = member.get("error") or {}
        nics = ", ".join(
            "{} ({})".format(n.get("name"), n.get("provisioningState"))
            for n in member.get("nics") or []
        )
        state = "FAIL {}: {}".format(error.get("code"), error.get("message")) if error else nics
        lines.append("member {:<10} {}".format(str(member.get("name")), state))
    for access in report.get("access") or []:
        mark = "ok" if access.get("ok") else ("FAIL" if access.get("checked") else "not checked")
        lines.append("access {} {}: {}".format(mark, access.get("permission"), access.get("how")))
    for ip in report.get("ips") or []:
        holders = ", ".join(short_resource(h.get("nic")) for h in ip.get("holders") or [])
        lines.append(
            "ip     {} ({}) on {}".format(
                ip.get("address"), ip.get("ipConfigName"), holders or "no NIC"
            )
        )
        for move in ip.get("moves") or []:
            changes = "; ".join(
                "{} {} {} {}".format(
                    c.get("kind"),
                    c.get("ipConfig") or ",".join(c.get("ipConfigs") or []) or "-",
                    "to" if c.get("kind") == "add" else "on",
                    short_resource(c.get("nic")),
                )
                for c in move.get("changes") or []
            )
            error = move.get("error") or {}
            if error:
                what = "would fail: {}: {}".format(error.get("code"), error.get("message"))
                if changes:
                    what += f" (then: {changes})"
            else:
                what = changes or "nothing to change"
            lines.append("move   {} -> {}: {}".format(ip.get("address"), move.get("to"), what))
    problems = report.get("problems") or []
    lines.append("problems: " + ("; ".join(map(str, problems)) if problems else "none"))
    return "\n".join(lines) + "\n"


COMMANDS: "Dict[str, Callable[[Session, argparse.Namespace], int]]" = {
    "acquire": cmd_acquire,
    "release": cmd_release,
    "status": cmd_status,
    "history": cmd_history,
    "check-config": cmd_check_config,
    "doctor": cmd_doctor,
    "move": cmd_move,
    "dry-run": cmd_dry_run,
}


# --------------------------------------------------------------------------------------------
# Command line

DESCRIPTION = """\
Move this VM's secondary private IP between cluster nodes through the IP-mover
Function app, authenticating with the VM's managed identity. Meant to be run by
EXPRESSCLUSTER (EXEC resource start.sh/stop.sh, custom monitor) or Pacemaker
(OCF agent azure-secondary-ip)."""

EPILOG_TEMPLATE = """\
settings:
  Each --some-option can also be given as IPMOVER_SOME_OPTION in the environment
  or as some_option in the [ipmover] section of the config file; a flag beats
  the environment, which beats the file, which beats the default. The config
  file is {config} unless --config or IPMOVER_CONFIG names another.

  [ipmover]
  url = https://ipmover-ha1.azurewebsites.net
  audience = api://<app id>
  ip = 10.5.0.110
  timeout = 300

examples:
  {prog} acquire                      # move the configured IP to this VM
  {prog} release --timeout 120
  {prog} status --ip 10.5.0.110 -q    # exit 0 if on this VM, 7 if not
  {prog} history --limit 10           # who moved it when; --json for scripts
  {prog} --config /etc/ipmover-db.conf acquire --context event=MANUAL
  {prog} doctor                       # check IMDS, token, function, clock, a read
  {prog} move --target server02 --token-file ~/.ipmover-token
                                     # operators: their own token (az's JSON or bare)
  CLP_EVENT=FAILOVER {prog} acquire   # EXPRESSCLUSTER's CLP_EVENT, CLP_SERVER,
                                     # CLP_GROUPNAME, CLP_RESOURCENAME are sent
                                     # along as the request's context

exit codes:
{exits}
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of exiting, so main() decides."""

    def error(self, message):
        raise UsageError(message)


def build_parser() -> "argparse.ArgumentParser":
    exits_help = "\n".join(f"  {code:>2}  {meaning}" for code, meaning in EXIT_TABLE)
    epilog = EPILOG_TEMPLATE.format(prog=PROG, config=DEFAULT_CONFIG, exits=exits_help)
    # Options live on a parent parser shared by the main parser and every command, so they
    # work before or after the command; SUPPRESS keeps a later parser from resetting them.
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config", metavar="PATH", help="config file (default " + DEFAULT_CONFIG + ")"
    )
    for param in PARAMS:
        flag = "--" + param.name.replace("_", "-")
        if param.kind == "bool":
            common.add_argument(
                flag, dest=param.name, action="store_const", const=True, help=param.help
            )
            common.add_argument(
                "--no-" + flag[2:], dest=param.name, action="store_const", const=False
            )
        else:
            common.add_argument(flag, dest=param.name, metavar=param.metavar, help=param.help)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    common.add_argument(
        "-v", "--verbose", action="store_true", help="one line per HTTP call on stderr"
    )
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=epilog,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + VERSION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, helptext in (
        ("acquire", "put the IP on this VM (and on no other)"),
        ("release", "take the IP off this VM"),
        ("status", "is the IP on this VM? (instance metadata; 0 yes, 7 no)"),
        ("history", "the IP's moves, newest first"),
        ("check-config", "validate the settings and print them; no network"),
        ("doctor", "check IMDS, token, function, clock and an authorized read; moves nothing"),
        ("move", "operators: move the IP to the member --target, with --token-file"),
        ("dry-run", "operators: what moving each IP of --cluster to each member would change"),
    ):
        sub = commands.add_parser(
            name, help=helptext, description=helptext, parents=[common],
            epilog=f"settings, examples and exit codes: {PROG} --help",
        )  # fmt: skip
        if name in ("acquire", "release", "move"):
            sub.add_argument(
                "--context",
                action="append",
                metavar="KEY=VALUE",
                help="add to the request's context (after CLP_EVENT, CLP_SERVER, ...)",
            )
            sub.add_argument(
                "--request-id", metavar="ID", help="idempotency key (default: a new uuid4)"
            )
        if name == "history":
            sub.add_argument("--json", action="store_true", help="print the records as JSON")
            sub.add_argument("--limit", type=int, default=20, help="how many (default 20)")
        if name == "status":
            sub.add_argument(
                "--explain",
                action="store_true",
                help="when the IP is not here, ask the function's history who took it "
                "(printed even with -q; says when it looks like a split brain)",
            )
        if name == "move":
            sub.add_argument("--target", required=True, help="the member to move the IP to")
            sub.add_argument(
                "--force", action="store_true", help="also take it from a non-member's NIC"
            )
        if name == "dry-run":
            sub.add_argument("--cluster", required=True, help="the cluster's name")
            sub.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def parse_args(argv: "List[str]") -> "argparse.Namespace":
    """Parse the command line; raises UsageError."""
    args = build_parser().parse_args(argv)
    if not args.command:  # 3.6's add_subparsers has no required=True
        raise UsageError("a command is required: " + ", ".join(COMMANDS))
    for name, default in (("quiet", False), ("verbose", False), ("config", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    for name in ("context", "request_id", "wait_imds"):
        if not hasattr(args, name):
            setattr(args, name, None)
    if args.request_id is not None and not REQUEST_ID_RE.match(args.request_id):
        raise UsageError("--request-id must be 1-64 of A-Z a-z 0-9 . _ : -")
    if getattr(args, "limit", 1) < 1:
        raise UsageError("--limit must be at least 1")
    return args


def _on_signal(signum, frame):
    raise Interrupted(f"interrupted by signal {signum}")


def main(
    argv: "Optional[List[str]]" = None,
    environ: "Optional[Dict[str, str]]" = None,
    out: "Any" = None,
    err: "Any" = None,
) -> int:
    """Run one command; the only place that maps outcomes to exit codes (EXIT_TABLE)."""
    environ = dict(os.environ if environ is None else environ)
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
    except UsageError as error:
        err.write(f"{PROG}: {error}\n(see {PROG} --help)\n")
        return EXIT_USAGE
    session: Optional[Session] = None
    label = args.command
    try:
        flags = {name: getattr(args, name, None) for name in PARAM_BY_NAME}
        flags["config"] = args.config
        settings = load_settings(flags, environ)
        validate_settings(settings, args.command)
        if settings["ip"] and args.command != "dry-run":
            label = "{} {}".format(args.command, settings["ip"])
        session = Session(settings, out, err, quiet=args.quiet, verbose=args.verbose)
        session.use_token_file = args.command in OPERATOR_COMMANDS
        signal.signal(signal.SIGTERM, _on_signal)
        return COMMANDS[args.command](session, args)
    except (ClientError, KeyboardInterrupt) as error:
        if isinstance(error, KeyboardInterrupt):
            error = Interrupted("interrupted")
        if args.command == "doctor" and session is None:
            doctor_config_failed(out, error)  # one line per check, even now
        message = str(error)
        if isinstance(error, Interrupted) and session is not None and session.where:
            message += "; the request was " + session.where
        err.write(f"{PROG}: {label} failed: {message}\n")
        err.flush()
        return error.exit_code
    except UsageError as error:
        err.write(f"{PROG}: {error}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
