"""One member's flood neither starves the other member nor floods ARM or the audit."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .conftest import IP, NIC, Mover


def test_a_flood_of_releases_never_makes_the_other_members_failover_expire(mover: Mover) -> None:
    assert mover.move("acquire", "server01")["status"] == "succeeded"
    before = {r["requestId"] for r in mover.get(f"ips/{IP}/history", "server01").json()["records"]}
    far = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)).isoformat()
    answers: list[int] = []
    accepted: list[str] = []

    def flood() -> None:
        for _ in range(300):
            r = mover.post("release", "server01", deadline=far)
            answers.append(r.status_code)
            if r.status_code in (200, 202):
                accepted.append(r.json()["requestId"])

    with ThreadPoolExecutor(1) as pool:
        flooding = pool.submit(flood)
        while len(answers) < 20:
            time.sleep(0.01)
        started = time.monotonic()
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)).isoformat()
        failover = mover.move("acquire", "server02", deadline=soon, context={"event": "FAILOVER"})
        waited = time.monotonic() - started
        flooding.result()

    for request_id in accepted:  # leave no request of the flood behind
        mover.wait(request_id, "server01")
    assert failover["status"] == "succeeded", failover
    assert waited < 15
    assert mover.holders() == [NIC["server02"]]
    assert answers.count(429) > 200, answers
    assert set(answers) <= {202, 200, 429}
    # The older real records are still in the IP's history.
    history = mover.get(f"ips/{IP}/history?limit=500", "server01").json()["records"]
    assert before <= {r["requestId"] for r in history}


def test_a_refused_post_gets_429_with_retry_after_and_queues_nothing(mover: Mover) -> None:
    # Hold the lock with slow NIC updates, and queue as many as allowed behind it.
    mover.stack.control.update_settings(nic_update_seconds=2.0)
    far = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
    queued = [mover.post("acquire", "server01", deadline=far) for _ in range(3)]
    assert [r.status_code for r in queued] == [202] * 3
    mover.stack.control.wait_for(
        lambda: len(mover.get(f"ips/{IP}", "server01").json()["lock"]["queue"]) == 2 or None,
        timeout=20,
    )

    request_id = str(uuid.uuid4())
    refused = mover.post("acquire", "server01", deadline=far, requestId=request_id)

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too_many_pending"
    assert int(refused.headers["Retry-After"]) >= 1
    assert mover.get(f"requests/{request_id}", "server01").status_code == 404
    # The other member is not counted against: it may still queue.
    other = mover.post("acquire", "server02", deadline=far)
    assert other.status_code == 202
    for r in queued:
        mover.wait(r.json()["requestId"], "server01")
    mover.wait(other.json()["requestId"], "server02")


def test_reading_ip_state_shares_one_arm_read(mover: Mover) -> None:
    seq = mover.stack.control.last_seq()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: mover.get(f"ips/{IP}", "server01"), range(100)))

    assert [a.status_code for a in answers] == [200] * 100
    lists = [
        r
        for r in mover.stack.control.requests(seq, method="GET")
        if r.path.lower().endswith("/networkinterfaces")
    ]
    assert len(lists) <= 2, len(lists)  # 100 reads of IP state, at most two ARM lists
    read_at = dt.datetime.fromisoformat(answers[-1].json()["holdersReadAt"])
    age = (dt.datetime.now(dt.UTC) - read_at).total_seconds()
    assert age < 5 + 2  # ipStateCacheSeconds (default 5) plus the test's own time
