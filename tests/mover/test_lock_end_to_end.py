"""The per-IP lock judged from outside: ARM's own record of NIC operations, not the mover's audit.

A stack of its own with a short lease (2 s) and NIC updates of 1.5 s, so that
every move outlasts its lease (renewal runs) and waits for a NIC update are
cut to half a lease.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from emulator.stack import start_stack

from .conftest import IP, NIC, Mover

SHORT_LEASE = {"lockLeaseSeconds": 2, "lockPollSeconds": 0.3}


@pytest.fixture
def short_lease(tmp_path: Path) -> Iterator[Mover]:
    with start_stack(
        tmp_path,
        azure_args=["--nic-update-seconds", "1.5", "--retry-after", "0.2"],
        limits=SHORT_LEASE,
        lro_poll_seconds=0.1,
    ) as stack:
        yield Mover(stack)


def nic_operations(mover: Mover) -> list[dict]:
    """Successful NIC updates as ARM ran them, in start order."""
    done = [o for o in mover.stack.control.operations() if o["status"] == "Succeeded"]
    return sorted(done, key=lambda o: o["started"])


def test_moves_longer_than_the_lease_never_overlap_at_arm(short_lease: Mover) -> None:
    mover = short_lease
    assert mover.move("acquire", "server01")["status"] == "succeeded"
    first_ops = len(nic_operations(mover))

    # Two takeovers back to back: each takes two 1.5 s NIC updates, longer than the lease.
    with ThreadPoolExecutor(2) as pool:
        to_02 = pool.submit(mover.move, "acquire", "server02")
        mover.stack.control.wait_for(lambda: len(nic_operations(mover)) > first_ops or None)
        to_01 = pool.submit(mover.move, "acquire", "server01")
        records = [to_02.result(), to_01.result()]

    assert [r["status"] for r in records] == ["succeeded", "succeeded"], records
    ops = nic_operations(mover)[first_ops:]
    # Serialized: remove from 01, add to 02, remove from 02, add to 01; no update
    # starts before the previous one has finished.
    assert [o["nic"].rsplit("/", 1)[-1] for o in ops] == [
        NIC["server01"],
        NIC["server02"],
        NIC["server02"],
        NIC["server01"],
    ]
    for before, after in itertools.pairwise(ops):
        assert after["started"] >= before["done_at"], (before, after)
    assert mover.holders() == [NIC["server01"]]


def test_two_posts_racing_with_one_request_id_make_one_request(short_lease: Mover) -> None:
    mover = short_lease
    request_id = str(uuid.uuid4())
    seq = mover.stack.control.last_seq()
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: mover.post("acquire", "server02", requestId=request_id), range(8))
        )

    assert {a.status_code for a in answers} <= {200, 202}, [a.text for a in answers]
    assert {a.json()["requestId"] for a in answers} == {request_id}
    record = mover.wait(request_id, "server02")
    assert record["status"] == "succeeded"
    # One move: a single add to server02's NIC (the IP was on no NIC).
    assert len(mover.writes_since(seq)) == 1
    history = mover.get(f"ips/{IP}/history", "server02").json()["records"]
    assert [r["requestId"] for r in history].count(request_id) == 1


def test_a_holder_overtaken_while_its_write_was_delayed_never_writes(short_lease: Mover) -> None:
    mover = short_lease
    control = mover.stack.control
    assert mover.move("acquire", "server01")["status"] == "succeeded"
    # server02's takeover reads server01's NIC, and that read takes longer than the lease:
    # meanwhile server01 asks for the IP again and gets the lock.
    control.delay_next(1, 3.5, method="GET", path=f"networkInterfaces/{NIC['server01']}$")
    seq = control.last_seq()
    slow = mover.post("acquire", "server02")
    control.wait_for(
        lambda: (
            mover.get(f"requests/{slow.json()['requestId']}", "server02").json()["status"]
            == "running"
            or None
        )
    )
    back = mover.move("acquire", "server01")
    overtaken = mover.wait(slow.json()["requestId"], "server02")

    assert back["status"] == "succeeded", back
    assert overtaken["status"] == "failed", overtaken
    assert overtaken["error"]["code"] == "lock_lost"
    assert mover.writes_since(seq) == []  # the late write never reached ARM
    mover.assert_only_on("server01")
