"""The mover end to end: the local Azure and the local host running function_app.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.stack import AUDIENCE, LocalStack, start_stack

IP = "10.5.0.110"
NIC = {"server01": "server01535", "server02": "server02800"}
FINISHED = ("succeeded", "failed", "expired")

# Fast Azure: NIC updates take 0.3 s and ARM suggests polling after 0.2 s.
FAST_AZURE = ["--nic-update-seconds", "0.3", "--retry-after", "0.2"]
FAST_LIMITS = {"lockPollSeconds": 1.0, "lockLeaseSeconds": 30}
# An update answered "Updating" is first polled after 0.2 s (it takes 0.3), then every 0.1 s.
FAST_POLLS = {"lro_poll_seconds": 0.1, "first_poll_seconds": 0.2}
# An operator (a user, not a VM): the app role lets it read everything and move an IP to a
# named member; its object id alone does nothing.
OPERATOR = "0e5f1d2c-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
OPERATOR_ROLE = "IpMover.Operator"


class Mover:
    """Calls the mover's API as the nodes do, with tokens from each VM's IMDS."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.http.trust_env = False
        self._tokens: dict[str, str] = {}

    def token(self, vm: str) -> str:
        """A VM's managed-identity token for the app (cached)."""
        if vm not in self._tokens:
            self._tokens[vm] = self.stack.vm_token(vm)
        return self._tokens[vm]

    def operator_token(self, roles: tuple[str, ...] = (OPERATOR_ROLE,), **claims: Any) -> str:
        """The operator's delegated token (Azure CLI) for the app, with these app roles."""
        return self.stack.control.user_token(
            AUDIENCE, oid=OPERATOR, roles=list(roles) or None, claims=claims or None
        )

    def post(
        self, action: str, vm: str, ip: str = IP, token: str | None = None, **body: Any
    ) -> requests.Response:
        """POST /v1/ips/{ip}/{action} as ``vm``."""
        body.setdefault("requestId", str(uuid.uuid4()))
        return self.http.post(
            f"{self.stack.api}/ips/{ip}/{action}",
            json=body,
            headers={"Authorization": f"Bearer {token or self.token(vm)}"},
            timeout=30,
        )

    def get(self, path: str, vm: str, token: str | None = None) -> requests.Response:
        """GET /v1/{path} as ``vm`` (or with another ``token``, e.g. an operator's)."""
        return self.http.get(
            f"{self.stack.api}/{path}",
            headers={"Authorization": f"Bearer {token or self.token(vm)}"},
            timeout=30,
        )

    def wait(
        self, request_id: str, vm: str, timeout: float = 60.0, token: str | None = None
    ) -> dict[str, Any]:
        """Poll the request until it has finished; return its record."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(f"requests/{request_id}", vm, token)
            assert r.status_code == 200, r.text
            record = r.json()
            if record["status"] in FINISHED:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"request {request_id} still {record['status']}: {record}")
            time.sleep(0.2)

    def move(self, action: str, vm: str, ip: str = IP, **body: Any) -> dict[str, Any]:
        """Post and wait: the finished record."""
        r = self.post(action, vm, ip, **body)
        assert r.status_code in (200, 202), r.text
        return self.wait(r.json()["requestId"], vm)

    def holders(self, ip: str = IP) -> list[str]:
        """Names of the NICs that hold the IP per the local ARM."""
        found = []
        for nic in self.stack.control.nics():
            for config in nic["properties"]["ipConfigurations"]:
                if config["properties"].get("privateIPAddress") == ip:
                    found.append(nic["name"])
        return found

    def assert_only_on(self, vm: str | None, ip: str = IP) -> None:
        """The IP is where a user would check it: ARM's holders, every NIC Succeeded,
        and each VM's own instance metadata (``vm`` None: on no VM)."""
        assert self.holders(ip) == ([NIC[vm]] if vm else [])
        for name in NIC.values():
            state = self.stack.control.nic(name)["properties"]["provisioningState"]
            assert state == "Succeeded", (name, state)
        for member in NIC:
            assert (ip in self.imds_ips(member)) == (member == vm), member

    def imds_ips(self, vm: str) -> list[str]:
        """Private IPs that ``vm``'s own instance metadata shows (what the VM really has)."""
        r = self.http.get(
            f"{self.stack.ready.imds[vm]}/metadata/instance/network?api-version=2021-02-01",
            headers={"Metadata": "true"},
            timeout=10,
        )
        r.raise_for_status()
        return [
            address["privateIpAddress"]
            for interface in r.json()["interface"]
            for address in interface["ipv4"]["ipAddress"]
        ]

    def writes_since(self, seq: int) -> list[Any]:
        """ARM writes logged after ``seq``."""
        return [r for r in self.stack.control.requests(since=seq) if r.method == "PUT"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local Azure (seed topology) and one host with the mover, for the session."""
    with start_stack(
        tmp_path_factory.mktemp("stack"),
        azure_args=FAST_AZURE,
        limits=FAST_LIMITS,
        **FAST_POLLS,
    ) as running:
        yield running


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack for one test alone (it kills the host, or reads the whole request log)."""
    with start_stack(tmp_path, azure_args=FAST_AZURE, limits=FAST_LIMITS, **FAST_POLLS) as running:
        yield running


@pytest.fixture
def nic_update_mode() -> str | None:
    """How the local ARM answers NIC updates (None: its default, mixed). Test modules
    override this fixture to run every test with updates answered each way."""
    return None


@pytest.fixture
def mover(stack: LocalStack, nic_update_mode: str | None) -> Iterator[Mover]:
    """A client, with ARM back at the seed state and no faults."""
    stack.control.reset()
    if nic_update_mode is not None:
        stack.control.update_settings(nic_update_mode=nic_update_mode)
    yield Mover(stack)


@pytest.fixture
def untouched(mover: Mover) -> Iterator[Mover]:
    """Asserts after the test that ARM saw no write and no request was queued."""
    seq = mover.stack.control.last_seq()
    instances_before = _instance_count(mover)
    yield mover
    assert mover.writes_since(seq) == []
    assert _instance_count(mover) == instances_before, "a refused request was queued"


def _instance_count(mover: Mover) -> int:
    r = requests.get(f"{mover.stack.rpc}instances/", timeout=10)
    return len([i for i in r.json() if i["name"] == "move_ip"])


def log_of(stack: LocalStack) -> str:
    """The host's log, for failure messages."""
    return Path(stack.host.log_path).read_text(errors="replace")[-5000:]
