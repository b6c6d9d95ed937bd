"""A host killed in the middle of a move: on restart the move completes, exactly once."""

from __future__ import annotations

from emulator.stack import LocalStack

from .conftest import NIC, Mover


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
