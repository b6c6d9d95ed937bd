"""Crashes: a host killed mid-move, a lock holder that died."""

from __future__ import annotations

from pathlib import Path

import requests

from emulator.stack import LocalStack, start_stack
from mover.records import parse_iso

from .conftest import FAST_AZURE, FAST_POLLS, NIC, Mover


def test_kill_between_remove_and_add_then_restart_completes_once(own_stack: LocalStack) -> None:
    mover = Mover(own_stack)
    control = own_stack.control
    assert mover.move("acquire", "server01")["status"] == "succeeded"

    # Make the add slow, so that the host dies while the IP is on no NIC.
    control.delay_next(1, 2.0, method="PUT", path=f"networkInterfaces/{NIC['server02']}")
    seq = control.last_seq()
    posted = mover.post("acquire", "server02")
    request_id = posted.json()["requestId"]

    def adding() -> bool:
        record = mover.get(f"requests/{request_id}", "server02").json()
        names = [(s["name"], s["status"]) for s in record["steps"]]
        return ("remove_ip_config", "succeeded") in names and ("add_ip_config", "running") in names

    control.wait_for(adding, timeout=20)
    assert mover.holders() == [], "the host should die while the IP is on no NIC"
    own_stack.restart_host(kill=True)

    record = mover.wait(request_id, "server02", timeout=60)
    assert record["status"] == "succeeded", record
    assert mover.holders() == [NIC["server02"]]
    removes = [r for r in control.requests(since=seq, method="PUT") if NIC["server01"] in r.path]
    assert len(removes) == 1, "the remove must not be executed twice"
    history = mover.get("ips/10.5.0.110/history", "server02").json()["records"]
    assert [r["requestId"] for r in history].count(request_id) == 1
    # And the lock is free for the next request.
    assert mover.move("acquire", "server01")["status"] == "succeeded"


def test_a_dead_lock_holder_is_passed_over_when_its_lease_runs_out(tmp_path: Path) -> None:
    """The holder's orchestration is terminated mid-move: the next request waits out the lease."""
    lease = 3.0
    with start_stack(
        tmp_path,
        azure_args=FAST_AZURE,
        limits={"lockLeaseSeconds": lease, "lockPollSeconds": 0.5},
        **FAST_POLLS,
    ) as stack:
        mover = Mover(stack)
        stack.control.update_settings(nic_update_seconds=2.0)
        holder = mover.post("acquire", "server01").json()["requestId"]
        stack.control.wait_for(
            lambda: mover.get(f"requests/{holder}", "server01").json()["status"] == "running"
        )
        r = requests.post(f"{stack.rpc}instances/{holder}/terminate", params={"reason": "test"})
        assert r.status_code == 202
        waiter = mover.move("acquire", "server02")
        assert waiter["status"] == "succeeded", waiter
        waited = (parse_iso(waiter["lockedAt"]) - parse_iso(waiter["createdAt"])).total_seconds()
        assert waited >= lease / 2, "the lock was taken from a holder whose lease had not run out"
        assert mover.holders() == [NIC["server02"]]
        terminated = mover.get(f"requests/{holder}", "server01").json()
        assert terminated["status"] == "failed" and terminated["error"]["code"] == "terminated"
