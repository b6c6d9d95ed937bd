"""A small stand-in for the node client's own tests: IMDS and the mover API v1 on one port.

Routed by path, state in memory, standard library only:

- ``GET /metadata/identity/oauth2/token``: a managed-identity token for this VM
  (scripted failures: ``state.token_script = [404, 410, 500]``; ``state.identity = False``);
- ``GET /metadata/instance/network``: this VM's NIC, with the secondary IP once a move
  put it here (after ``state.imds_lag`` seconds);
- ``/api/v1/...``: acquire, release, requests, ips, history, health as docs/api.md describes.
  A move is queued for ``state.queue_time`` seconds, then runs its steps ``state.step_time``
  each; status is computed from the clock when asked, so no background threads.

It is not the project's local Azure (``emulator/azure``): it models one VM ("server02")
and one other holder ("server01"), enough to drive the client, the EXPRESSCLUSTER scripts
and the OCF agent. Run it by hand with ``python tests/node_client/fake_azure.py``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ha/providers"
THIS_VM, THIS_NIC = "server02", "server02-nic"
OTHER_VM, OTHER_NIC = "server01", "server01-nic"
PRIMARY_IP = "10.5.0.102"
CLUSTER_IP = "10.5.0.110"
AUDIENCE = "api://ipmover-test"
THIS_OID = "2b7c9e1a-0002-4c3d-8e5f-6a7b8c9d0e02"
TENANT = "9d2f4c1a-7b3e-4e5f-8a6b-1c2d3e4f5a6b"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def nic_id(nic: str) -> str:
    return f"{SUB}/Microsoft.Network/networkInterfaces/{nic}"


def vm_id(vm: str) -> str:
    return f"{SUB}/Microsoft.Compute/virtualMachines/{vm}"


def rfc3339(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Fault:
    """Answer the next `times` matching requests with `status`, or drop them: "drop" closes
    before doing anything, "drop-after" does the work and then closes without an answer."""

    method: str
    path_prefix: str
    action: int | str
    times: int = 1


@dataclass
class Move:
    request_id: str
    ip: str
    action: str
    context: dict[str, Any]
    created: float  # wall clock
    deadline: float
    plan: list[tuple[str, str, float]]  # (step name, nic or "", seconds it takes)
    queue_time: float  # these are frozen when the request arrives
    fail_step: str | None
    applied: bool = False


@dataclass
class State:
    """Everything a test may set or inspect. Tests reset it with reset()."""

    identity: bool = True
    member: bool = True
    audience: str = AUDIENCE
    token_claims: dict[str, Any] = field(default_factory=dict)  # over IMDS tokens' claims
    operator_tokens: list[str] = field(default_factory=list)  # accepted besides this VM's
    clock_skew: float = 0.0  # seconds added to the Date header of every answer
    token_script: list[int] = field(default_factory=list)
    network_script: list[int] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    queue_time: float = 0.0
    step_time: float = 0.01
    imds_lag: float = 0.0
    fail_step: str | None = None
    slow_steps: dict[str, float] = field(default_factory=dict)  # step name -> its duration
    deadline_skew: float = 0.0  # added to every deadline the fake receives (a skewed clock)
    queue_ahead: list[str] = field(default_factory=list)
    holder: str | None = OTHER_NIC  # NIC holding CLUSTER_IP now (per "ARM")
    visible: dict[str, float] = field(default_factory=dict)  # ip -> when IMDS shows it here
    moves: dict[str, Move] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        fresh = State()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def token_for(self, resource: str) -> str:
        """A JWT-shaped token of this VM for `resource` (unsigned: nothing here verifies it;
        the client's doctor reads its claims)."""
        claims = {"aud": resource, "oid": THIS_OID, "tid": TENANT, "idtyp": "app"}
        claims.update(self.token_claims)
        claims = {k: v for k, v in claims.items() if v is not None}
        payload = base64.urlsafe_b64encode(json.dumps(claims, sort_keys=True).encode())
        return "fake-token." + payload.decode().rstrip("=") + ".unsigned"

    def requests_to(self, prefix: str, method: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.log
            if e["path"].startswith(prefix) and (method is None or e["method"] == method)
        ]

    # The move model ------------------------------------------------------------------------

    def timeline(self, move: Move, now: float) -> dict[str, Any]:
        """The request record at `now`, as GET /api/v1/requests/{id} shows it."""
        start = move.created + move.queue_time
        record: dict[str, Any] = {
            "requestId": move.request_id,
            "ip": move.ip,
            "action": move.action,
            "cluster": "ha1",
            "caller": {"member": THIS_VM, "vm": vm_id(THIS_VM)},
            "context": move.context,
            "createdAt": rfc3339(move.created),
            "deadline": rfc3339(move.deadline),
            "fromNics": [nic_id(n) for name, n, _ in move.plan if name == "remove_ip_config"],
            "toNic": nic_id(THIS_NIC) if move.action == "acquire" else None,
            "steps": [],
            "unassigned": False,
            "error": None,
        }
        if now < start:
            if move.deadline < now:
                record.update(status="expired", finishedAt=rfc3339(move.deadline))
            else:
                record["status"] = "queued"
            return record
        if move.deadline < start:
            record.update(status="expired", finishedAt=rfc3339(move.deadline))
            return record
        record.update(status="running", lockedAt=rfc3339(start))
        began = start
        for name, nic, took in move.plan:
            if now < began:
                return record
            step: dict[str, Any] = {"name": name, "status": "running", "startedAt": rfc3339(began)}
            if nic:
                step["nic"] = nic_id(nic)
            record["steps"].append(step)
            if now < began + took:
                return record
            began += took
            step["finishedAt"] = rfc3339(began)
            if name == move.fail_step:
                step["status"] = "failed"
                error = {"code": "PrivateIPAddressInUse", "message": f"{name} failed (fake)"}
                step["error"] = error
                record.update(status="failed", error=error, finishedAt=step["finishedAt"])
                return record
            step["status"] = "succeeded"
        finished = began
        record.update(status="succeeded", finishedAt=rfc3339(finished))
        if not move.applied:
            move.applied = True
            if move.action == "acquire":
                self.holder = THIS_NIC
                self.visible[move.ip] = finished + self.imds_lag
            elif self.holder == THIS_NIC:
                self.holder = None
                self.visible.pop(move.ip, None)
        return record

    def plan(self, action: str) -> list[tuple[str, str, float]]:
        steps = [("find_holder", "")]
        if action == "acquire":
            if self.holder not in (None, THIS_NIC):
                steps.append(("remove_ip_config", self.holder))
            if self.holder != THIS_NIC:
                steps.append(("add_ip_config", THIS_NIC))
        elif self.holder == THIS_NIC:
            steps.append(("remove_ip_config", THIS_NIC))
        steps.append(("verify", ""))
        return [(name, nic, self.slow_steps.get(name, self.step_time)) for name, nic in steps]


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header, from a clock `state.clock_skew` seconds off.
        moment = time.time() if timestamp is None else timestamp
        return super().date_time_string(moment + self.server.state.clock_skew)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # Plumbing -------------------------------------------------------------------------------

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        self._reply(status, {"error": {"code": code, "message": message}}, headers)

    def _handle(self, method: str) -> None:
        state = self.server.state
        parts = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with self.server.lock:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            state.log.append(
                {
                    "method": method,
                    "path": parts.path,
                    "query": dict(urllib.parse.parse_qsl(parts.query)),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            fault = next(
                (
                    f
                    for f in state.faults
                    if f.times > 0 and f.method == method and parts.path.startswith(f.path_prefix)
                ),
                None,
            )
            if fault is not None:
                fault.times -= 1
                if fault.action == "drop":
                    self.close_connection = True
                    return
                if isinstance(fault.action, int):
                    self._error(fault.action, "injected", f"injected fault {fault.action}")
                    return
            answer = self._route(
                method, parts.path, dict(urllib.parse.parse_qsl(parts.query)), body
            )
            if fault is not None and fault.action == "drop-after":
                self.close_connection = True
                return
            if answer is not None:
                self._reply(*answer)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]] | None:
        if path == "/metadata/identity/oauth2/token" and method == "GET":
            return self._token(query)
        if path == "/metadata/instance/network" and method == "GET":
            return self._network(query)
        if path == "/api/v1/health":
            return 200, {"status": "ok", "audience": self.server.state.audience}, {}
        if path.startswith("/api/v1/"):
            caller_error = self._authorize()
            if caller_error is not None:
                self._error(*caller_error)
                return None
            return self._api(method, path[len("/api/v1") :], query, body)
        self._error(404, "not_found", f"no route for {method} {path}")
        return None

    # IMDS -----------------------------------------------------------------------------------

    def _token(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        state = self.server.state
        if self.headers.get("Metadata") != "true":
            return 400, {"error": "invalid_request", "error_description": "no Metadata"}, {}
        if state.token_script:
            status = state.token_script.pop(0)
            return status, {"error": "busy", "error_description": f"scripted {status}"}, {}
        if not state.identity:
            return 400, {"error": "invalid_request", "error_description": "Identity not found"}, {}
        if query.get("api-version") != "2018-02-01" or not query.get("resource"):
            return 400, {"error": "invalid_request", "error_description": "bad query"}, {}
        expires = int(time.time()) + 86399
        return (
            200,
            {
                "access_token": state.token_for(query["resource"]),
                "expires_in": "86399",
                "expires_on": str(expires),
                "resource": query["resource"],
                "token_type": "Bearer",
            },
            {},
        )

    def _network(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        state = self.server.state
        if self.headers.get("Metadata") != "true" or query.get("api-version") != "2021-02-01":
            return 400, {"error": "Bad request"}, {}
        if state.network_script:
            status = state.network_script.pop(0)
            return status, {"error": f"scripted {status}"}, {}
        state_now = time.time()
        for move in list(state.moves.values()):
            state.timeline(move, state_now)  # apply finished moves
        addresses = [{"privateIpAddress": PRIMARY_IP, "publicIpAddress": ""}]
        addresses += [
            {"privateIpAddress": ip, "publicIpAddress": ""}
            for ip, since in sorted(state.visible.items())
            if since <= state_now
        ]
        interface = {
            "ipv4": {"ipAddress": addresses, "subnet": [{"address": "10.5.0.0", "prefix": "24"}]},
            "ipv6": {"ipAddress": []},
            "macAddress": "000D3A000002",
        }
        return 200, {"interface": [interface]}, {}

    # Mover API ------------------------------------------------------------------------------

    def _authorize(self) -> tuple[int, str, str] | None:
        state = self.server.state
        header = self.headers.get("Authorization", "")
        accepted = [state.token_for(state.audience), *state.operator_tokens]
        if header not in ["Bearer " + token for token in accepted]:
            return 401, "unauthenticated", "missing or invalid token (fake checks the audience)"
        if not state.member:
            return 403, "not_a_member", f"{THIS_VM} is not a member of cluster ha1"
        return None

    def _api(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]] | None:
        state = self.server.state
        now = time.time()
        match = re.fullmatch(r"/ips/([^/]+)/(acquire|release)", path)
        if match and method == "POST":
            return self._move(match.group(1), match.group(2), body, now)
        match = re.fullmatch(r"/requests/([^/]+)", path)
        if match and method == "GET":
            move = state.moves.get(match.group(1))
            if move is None:
                self._error(404, "unknown_request", "no such request")
                return None
            return 200, state.timeline(move, now), {}
        match = re.fullmatch(r"/ips/([^/]+)/history", path)
        if match and method == "GET":
            limit = int(query.get("limit", "50"))
            records = [state.timeline(m, now) for m in state.moves.values() if m.ip == match[1]]
            done = [r for r in records if r["status"] in ("succeeded", "failed", "expired")]
            done.sort(key=lambda r: r["finishedAt"], reverse=True)
            return 200, {"ip": match.group(1), "records": done[:limit]}, {}
        match = re.fullmatch(r"/ips/([^/]+)", path)
        if match and method == "GET":
            records = [state.timeline(m, now) for m in state.moves.values()]
            queued = [r["requestId"] for r in records if r["status"] == "queued"]
            holders = [{"nic": nic_id(state.holder), "vm": None, "member": None}]
            return (
                200,
                {
                    "ip": match.group(1),
                    "cluster": "ha1",
                    "ipConfigName": "ipconfig2",
                    "holders": holders if state.holder else [],
                    "lock": {"holder": None, "since": None, "queue": state.queue_ahead + queued},
                },
                {},
            )
        self._error(404, "not_found", f"no route for {method} {path}")
        return None

    def _move(
        self, ip: str, action: str, body: Any, now: float
    ) -> tuple[int, Any, dict[str, str]] | None:
        state = self.server.state
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            self._error(400, "invalid_ip", f"{ip!r} is not an IP address")
            return None
        if ip != CLUSTER_IP:
            self._error(404, "unknown_ip", f"no configured cluster owns {ip}")
            return None
        if not isinstance(body, dict):
            self._error(400, "invalid_json", "body is not a JSON object")
            return None
        request_id = body.get("requestId", "")
        if not REQUEST_ID.match(str(request_id)):
            self._error(400, "invalid_request_id", "bad requestId")
            return None
        try:
            deadline = dt.datetime.fromisoformat(body["deadline"].replace("Z", "+00:00"))
        except (KeyError, AttributeError, ValueError):
            self._error(400, "invalid_deadline", "deadline is not RFC 3339")
            return None
        deadline += dt.timedelta(seconds=state.deadline_skew)
        if deadline.timestamp() < now:
            self._error(400, "deadline_passed", "the deadline is in the past")
            return None
        move = state.moves.get(request_id)
        if move is None:
            move = Move(
                request_id, ip, action, body.get("context") or {}, now, deadline.timestamp(),
                state.plan(action), state.queue_time, state.fail_step,
            )  # fmt: skip
            state.moves[request_id] = move
        elif (move.ip, move.action) != (ip, action):
            self._error(409, "request_id_conflict", "requestId used for another request")
            return None
        record = state.timeline(move, now)
        status_url = f"/api/v1/requests/{request_id}"
        finished = record["status"] in ("succeeded", "failed", "expired")
        answer = {
            "requestId": request_id,
            "ip": ip,
            "action": action,
            "status": record["status"],
            "statusUrl": status_url,
        }
        return (200 if finished else 202), answer, {"Location": status_url}


class FakeServer(ThreadingHTTPServer):
    """The fake on 127.0.0.1; with `tls` (a server SSLContext) it speaks https, and with
    `peer` it shares that instance's state (an https API beside a plain-http IMDS)."""

    daemon_threads = True

    def __init__(
        self, port: int = 0, tls: ssl.SSLContext | None = None, peer: FakeServer | None = None
    ) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.state = State() if peer is None else peer.state
        self.lock = threading.Lock() if peer is None else peer.lock
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeServer(args.port)
    print(json.dumps({"url": server.url, "audience": AUDIENCE, "ip": CLUSTER_IP}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
