"""Retention: finished requests are purged after limits.retentionDays; their history stays."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulator.stack import LocalStack, start_stack

from .conftest import FAST_AZURE, FAST_LIMITS, FAST_POLLS, IP, NIC, Mover, log_of

RETENTION_SECONDS = 5.0
# A request may not outlive the retention while its node can still retry the POST.
RETENTION_LIMITS = {
    **FAST_LIMITS,
    "retentionDays": RETENTION_SECONDS / 86400,
    "maxDeadlineSeconds": 4,
    "defaultDeadlineSeconds": 4,
}
# What the retention job logs after each run.
PURGE_RUN = re.compile(r"purged (\d+) finished requests created before (\S+)")


@pytest.fixture
def retention_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack whose retention job runs every second, with a retention of 5 s."""
    with start_stack(
        tmp_path,
        azure_args=FAST_AZURE,
        limits=RETENTION_LIMITS,
        **FAST_POLLS,
        host_settings={"MOVER_RETENTION_SCHEDULE": "* * * * * *"},
    ) as running:
        yield running


def purge_cutoffs(stack: LocalStack) -> list[str]:
    """The cutoff of every retention run so far (RFC 3339 UTC, comparable as text)."""
    return [m.group(2) for m in PURGE_RUN.finditer(Path(stack.host.log_path).read_text())]


def test_a_finished_request_is_purged_after_the_retention_and_stays_in_the_history(
    retention_stack: LocalStack,
) -> None:
    mover = Mover(retention_stack)
    control = retention_stack.control
    finished = mover.move("acquire", "server01")
    assert finished["status"] == "succeeded"

    # The next request hangs on its first NIC write, well past the retention.
    control.delay_next(1, 12.0, method="PUT", path=f"networkInterfaces/{NIC['server01']}")
    posted = mover.post("acquire", "server02")
    assert posted.status_code == 202, posted.text
    hanging = posted.json()["requestId"]
    control.wait_for(
        lambda: mover.get(f"requests/{hanging}", "server02").json()["status"] == "running"
    )

    control.wait_for(
        lambda: mover.get(f"requests/{finished['requestId']}", "server01").status_code == 404,
        timeout=30,
    )
    records = mover.get(f"ips/{IP}/history", "server01").json()["records"]
    assert finished in records

    # A run whose cutoff is past the hanging request's creation left it alone.
    created = mover.get(f"requests/{hanging}", "server02").json()["createdAt"]
    control.wait_for(lambda: any(c > created for c in purge_cutoffs(retention_stack)), timeout=30)
    assert mover.get(f"requests/{hanging}", "server02").json()["status"] == "running"
    instance = requests.get(f"{retention_stack.rpc}instances/{hanging}", timeout=10)
    assert instance.status_code == 202 and instance.json()["runtimeStatus"] == "Running"
    # The IP's lock and history entities are never purged.
    for entity in ("ip_lock", "ip_history"):
        state = requests.get(f"{retention_stack.rpc}entities/{entity}/{IP}", timeout=10)
        assert state.status_code == 200, log_of(retention_stack)

    # Once it has finished (failed: its deadline passed while ARM hung), its turn comes too:
    # the next run (within a second) purges it, so its end is read from the IP's history.
    control.wait_for(
        lambda: mover.get(f"requests/{hanging}", "server02").status_code == 404, timeout=30
    )
    history = mover.get(f"ips/{IP}/history", "server02").json()["records"]
    assert [r["requestId"] for r in history] == [hanging, finished["requestId"]]
    ended = history[0]
    assert (ended["status"], ended["error"]["code"]) == ("failed", "deadline_exceeded")
