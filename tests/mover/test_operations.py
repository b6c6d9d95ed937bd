"""What operations read: one telemetry line per finished request, and the history export.

The telemetry line is read where Azure would take it from: the host's log of the
worker's RpcLog messages (Microsoft's worker sends the formatted message only).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from emulator.stack import AUDIENCE
from mover.telemetry import MOVE_EVENT

from .conftest import IP, NIC, Mover

NIC_PUT = "networkInterfaces/server02800"


def telemetry_of(mover: Mover, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The ``ipmover.move`` fields the app logged for this request (waits for the line)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in _move_lines(mover) if f'"requestId":"{request_id}"' in line]
        if found:
            assert len(found) == 1, found  # once, never again from a replay
            return json.loads(found[0].split(MOVE_EVENT + " ", 1)[1])
        if time.monotonic() > deadline:
            raise AssertionError(f"no {MOVE_EVENT} line for {request_id}")
        time.sleep(0.1)


def _move_lines(mover: Mover) -> list[str]:
    text = Path(mover.stack.host.log_path).read_text(errors="replace")
    return [line for line in text.splitlines() if f"{MOVE_EVENT} {{" in line]


def test_a_takeover_logs_one_line_with_the_moves_fields(mover: Mover) -> None:
    assert mover.move("acquire", "server01")["status"] == "succeeded"

    record = mover.move("acquire", "server02", context={"event": "FAILOVER"})

    fields = telemetry_of(mover, record["requestId"])
    assert fields["ip"] == IP and fields["cluster"] == record["cluster"]
    assert fields["outcome"] == "succeeded" and fields["errorCode"] is None
    assert (fields["action"], fields["member"], fields["event"]) == (
        "acquire",
        "server02",
        "FAILOVER",
    )
    assert fields["fromNics"] == [NIC["server01"]] and fields["toNic"] == NIC["server02"]
    # A remove and an add, each one NIC write.
    # One read of the members (find the holder); the verification is the updates' answers.
    assert fields["armWrites"] == 2 and fields["armReads"] == 1
    assert fields["armThrottled"] == 0 and fields["armRetries"] == 0
    assert fields["createdAt"] == record["createdAt"]
    assert fields["finishedAt"] == record["finishedAt"]
    assert 0 < fields["durationSeconds"] < 30


def test_throttling_and_failures_are_counted(mover: Mover) -> None:
    assert mover.move("acquire", "server01")["status"] == "succeeded"
    mover.stack.control.fail_next(
        2,
        method="PUT",
        path=NIC_PUT,
        status=429,
        code="SubscriptionRequestsThrottled",
        retry_after=0.2,
    )

    record = mover.move("acquire", "server02")

    fields = telemetry_of(mover, record["requestId"])
    assert record["status"] == "succeeded"
    assert (fields["armThrottled"], fields["armRetries"]) == (2, 2)
    assert fields["armWrites"] == 4


def test_a_refused_move_logs_its_error_code(mover: Mover) -> None:
    control = mover.stack.control
    control.fail_next(1, method="PUT", path=NIC_PUT, status=400, code="InvalidRequestFormat")

    record = mover.move("acquire", "server02")

    fields = telemetry_of(mover, record["requestId"])
    assert (fields["outcome"], fields["errorCode"]) == ("failed", "InvalidRequestFormat")


def test_the_telemetry_never_carries_a_token(mover: Mover) -> None:
    token = mover.token("server01")
    record = mover.move("acquire", "server01")
    telemetry_of(mover, record["requestId"])

    text = Path(mover.stack.host.log_path).read_text(errors="replace")
    signature = token.rsplit(".", 1)[1]
    assert signature not in text and token.split(".")[1] not in text


def test_the_history_exports_as_json_lines_page_by_page(mover: Mover) -> None:
    moved = [mover.move("acquire", vm)["requestId"] for vm in ("server01", "server02", "server01")]
    token = mover.operator_token()
    url = f"{mover.stack.api}/ips/{IP}/history/export?limit=2"
    exported: list[dict[str, Any]] = []
    pages = 0
    while url:
        r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        exported += [json.loads(line) for line in r.text.splitlines()]
        pages += 1
        link = r.links.get("next", {}).get("url")
        url = requests.compat.urljoin(mover.stack.api, link) if link else ""

    # Oldest first: the three moves are the newest records, in the order they finished.
    assert [r["requestId"] for r in exported][-3:] == moved
    assert len({r["requestId"] for r in exported}) == len(exported)
    assert pages == -(-len(exported) // 2)
    newest = mover.get(f"ips/{IP}/history?limit=3", "server01").json()["records"]
    assert [r["requestId"] for r in reversed(newest)] == moved


def test_the_export_is_for_members_and_operators_only(untouched: Mover) -> None:
    stranger = untouched.stack.control.user_token(AUDIENCE, oid=str(uuid.uuid4()), roles=None)
    r = requests.get(
        f"{untouched.stack.api}/ips/{IP}/history/export",
        headers={"Authorization": f"Bearer {stranger}"},
        timeout=10,
    )
    anonymous = requests.get(f"{untouched.stack.api}/ips/{IP}/history/export", timeout=10)
    gone = untouched.get(f"ips/{IP}/history/export?after=no-such-request", "server01")

    assert r.status_code in (401, 403)
    assert anonymous.status_code == 401
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "cursor_gone"
