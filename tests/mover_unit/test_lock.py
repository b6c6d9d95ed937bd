"""IpLock: FIFO per IP, only the head is granted, a lease frees a dead holder."""

from __future__ import annotations

import json

import pytest

from mover.lock import STALE_WAITER_SECONDS, Grant, IpLock, Waiter, Wake

T0 = 1_000.0
LEASE = 120.0
FAR = T0 + 10_000.0  # a deadline that does not matter


def ask(lock: IpLock, request_id: str, now: float, *, deadline: float = FAR, wake=None) -> Grant:
    return lock.try_acquire(request_id, deadline, now, LEASE, wake)


def queue_of(lock: IpLock) -> list[str]:
    return [w.request_id for w in lock.queue]


def held_by_a_with_waiters(*waiters: str, now: float = T0) -> IpLock:
    lock = IpLock()
    ask(lock, "A", now)
    for i, request_id in enumerate(waiters, start=1):
        ask(lock, request_id, now + i, wake=f"wake-{request_id}")
    return lock


# -- granting -----------------------------------------------------------------


def test_free_lock_is_granted_to_the_first_request():
    lock = IpLock()

    grant = ask(lock, "A", T0)

    assert grant == Grant(True, 0, "A", T0 + LEASE)
    assert (lock.holder, lock.since, lock.lease_until) == ("A", T0, T0 + LEASE)
    assert lock.queue == []


def test_request_for_a_held_lock_joins_the_queue():
    lock = held_by_a_with_waiters()

    grant = ask(lock, "B", T0 + 1, wake="wake-b1")

    assert grant == Grant(False, 1, "A")
    assert lock.queue == [Waiter("B", FAR, T0 + 1, "wake-b1")]


def test_waiters_are_served_first_come_first_served():
    lock = held_by_a_with_waiters("B", "C", "D")
    assert [ask(lock, r, T0 + 5).position for r in ("D", "B", "C")] == [3, 1, 2]

    lock.release("A", T0 + 10)
    # The lock is free, but only the head of the queue may take it.
    assert ask(lock, "D", T0 + 11) == Grant(False, 3, None)
    assert ask(lock, "C", T0 + 12) == Grant(False, 2, None)
    assert ask(lock, "B", T0 + 13) == Grant(True, 0, "B", T0 + 13 + LEASE)
    assert ask(lock, "D", T0 + 14) == Grant(False, 2, "B")

    lock.release("B", T0 + 20)
    assert ask(lock, "D", T0 + 21).granted is False
    assert ask(lock, "C", T0 + 22).granted is True

    lock.release("C", T0 + 30)
    assert ask(lock, "D", T0 + 31) == Grant(True, 0, "D", T0 + 31 + LEASE)
    assert lock.queue == []


def test_a_late_request_queues_behind_earlier_waiters_even_when_the_lock_is_free():
    lock = held_by_a_with_waiters("B")
    lock.release("A", T0 + 10)

    assert ask(lock, "E", T0 + 11) == Grant(False, 2, None)
    assert queue_of(lock) == ["B", "E"]


def test_holder_asking_again_renews_its_lease_and_keeps_its_start():
    lock = held_by_a_with_waiters("B")

    grant = ask(lock, "A", T0 + 50)

    assert grant == Grant(True, 0, "A", T0 + 50 + LEASE)
    assert lock.since == T0
    assert queue_of(lock) == ["B"]


def test_waiter_asking_again_keeps_its_place():
    lock = held_by_a_with_waiters("B", "C")

    assert ask(lock, "C", T0 + 30).position == 2
    assert ask(lock, "B", T0 + 31).position == 1
    assert queue_of(lock) == ["B", "C"]


# -- the lease ----------------------------------------------------------------


def test_holder_keeps_the_lock_until_its_lease_runs_out():
    lock = held_by_a_with_waiters("B")

    assert ask(lock, "B", T0 + LEASE - 0.1) == Grant(False, 1, "A")
    assert ask(lock, "B", T0 + LEASE) == Grant(True, 0, "B", T0 + LEASE + LEASE)
    assert lock.last_expired == "A lost the lock: its lease ran out"


def test_holder_whose_lease_ran_out_keeps_the_lock_while_nobody_took_it():
    # A slow holder (an overloaded host) is not a dead one: nobody else wrote.
    lock = held_by_a_with_waiters("B")

    assert lock.renew("A", T0 + LEASE + 50, LEASE) is True
    assert (lock.holder, lock.since, lock.lease_until) == ("A", T0, T0 + LEASE + 50 + LEASE)
    assert ask(lock, "B", T0 + LEASE + 60).granted is False


def test_holder_overtaken_after_its_lease_ran_out_cannot_renew():
    lock = held_by_a_with_waiters("B")
    assert ask(lock, "B", T0 + LEASE).granted is True

    assert lock.renew("A", T0 + LEASE + 1, LEASE) is False
    assert lock.holder == "B"
    assert lock.last_expired == "A lost the lock: its lease ran out"


def test_renewing_holder_extends_its_lease():
    lock = held_by_a_with_waiters("B")

    assert lock.renew("A", T0 + 100, LEASE) is True
    assert lock.lease_until == T0 + 100 + LEASE
    # Past the first lease, the waiter is still not granted.
    assert ask(lock, "B", T0 + LEASE + 10).granted is False


@pytest.mark.parametrize("request_id", ["B", "Z"], ids=["waiter", "stranger"])
def test_only_the_holder_can_renew(request_id):
    lock = held_by_a_with_waiters("B")

    assert lock.renew(request_id, T0 + 10, LEASE) is False
    assert (lock.holder, lock.lease_until) == ("A", T0 + LEASE)


def test_former_holder_asking_after_its_lease_ran_out_queues_at_the_end():
    lock = held_by_a_with_waiters("B")
    ask(lock, "B", T0 + LEASE - 1)

    assert ask(lock, "A", T0 + LEASE + 1) == Grant(False, 2, None)
    assert queue_of(lock) == ["B", "A"]


# -- release ------------------------------------------------------------------


def test_holder_release_frees_the_lock():
    lock = held_by_a_with_waiters()

    assert lock.release("A", T0 + 5) is None
    assert (lock.holder, lock.since, lock.lease_until) == (None, None, None)
    assert ask(lock, "B", T0 + 6).granted is True


def test_holder_release_names_the_next_waiter_to_wake():
    lock = held_by_a_with_waiters("B", "C")

    assert lock.release("A", T0 + 5) == Wake("B", "wake-B")
    assert lock.holder is None
    assert queue_of(lock) == ["B", "C"]


def test_the_wake_event_is_the_one_named_by_the_waiters_latest_request():
    lock = held_by_a_with_waiters("B")
    ask(lock, "B", T0 + 3, wake="wake-B-2")

    assert lock.release("A", T0 + 5) == Wake("B", "wake-B-2")


def test_no_one_is_woken_when_the_next_waiter_named_no_event():
    lock = held_by_a_with_waiters()
    ask(lock, "B", T0 + 1)

    assert lock.release("A", T0 + 5) is None


def test_queued_waiter_can_give_up_its_place():
    lock = held_by_a_with_waiters("B", "C", "D")

    assert lock.release("C", T0 + 5) is None  # the lock is still held: wake no one
    assert queue_of(lock) == ["B", "D"]
    assert ask(lock, "D", T0 + 6).position == 2
    assert lock.holder == "A"


def test_releasing_an_unknown_request_changes_nothing():
    lock = held_by_a_with_waiters("B")
    before = lock.to_dict()

    assert lock.release("Z", T0 + 5) is None
    assert lock.to_dict() == before


def test_former_holder_releasing_late_does_not_free_the_new_holder():
    lock = held_by_a_with_waiters("B")
    ask(lock, "B", T0 + LEASE + 1)  # A's lease ran out; B takes over

    assert lock.release("A", T0 + LEASE + 2) is None
    assert lock.holder == "B"


# -- waiters that went away ---------------------------------------------------


def test_waiter_unseen_for_sixty_seconds_leaves_the_queue():
    lock = held_by_a_with_waiters("B", "C")  # B seen at T0+1, C at T0+2
    ask(lock, "A", T0 + 50)  # the holder keeps its lease

    grant = ask(lock, "C", T0 + 1 + STALE_WAITER_SECONDS)

    assert STALE_WAITER_SECONDS == 60
    assert grant == Grant(False, 1, "A")
    assert queue_of(lock) == ["C"]


def test_waiter_that_keeps_asking_keeps_its_place():
    lock = held_by_a_with_waiters("B", "C")
    for t in range(10, 200, 10):
        ask(lock, "A", T0 + t)
        ask(lock, "B", T0 + t)

    # C stopped asking long ago; B never did.
    assert queue_of(lock) == ["B"]


def test_a_stale_head_blocks_the_free_lock_only_until_it_is_dropped():
    lock = held_by_a_with_waiters("B", "C")
    lock.release("A", T0 + 5)

    assert ask(lock, "C", T0 + 30).granted is False
    assert ask(lock, "C", T0 + 1 + STALE_WAITER_SECONDS).granted is True


def test_release_wakes_the_first_waiter_still_alive():
    lock = held_by_a_with_waiters("B", "C")
    ask(lock, "A", T0 + 59)
    ask(lock, "C", T0 + 59, wake="wake-C-2")

    assert lock.release("A", T0 + 61) == Wake("C", "wake-C-2")
    assert queue_of(lock) == ["C"]


def test_waiter_whose_deadline_passed_leaves_the_queue():
    lock = IpLock()
    ask(lock, "A", T0)
    ask(lock, "B", T0 + 1, deadline=T0 + 20)
    ask(lock, "C", T0 + 2)

    assert ask(lock, "C", T0 + 19).position == 2
    assert ask(lock, "C", T0 + 20).position == 1
    assert queue_of(lock) == ["C"]


def test_expired_waiters_are_dropped_by_renew_too():
    lock = IpLock()
    ask(lock, "A", T0)
    ask(lock, "B", T0 + 1, deadline=T0 + 20)

    lock.renew("A", T0 + 30, LEASE)

    assert lock.queue == []


def test_dropped_waiter_asking_again_rejoins_at_the_end():
    lock = held_by_a_with_waiters("B", "C")
    ask(lock, "A", T0 + 61)
    ask(lock, "C", T0 + 61)  # B is dropped now

    assert ask(lock, "B", T0 + 62) == Grant(False, 2, "A")
    assert queue_of(lock) == ["C", "B"]


# -- state as data ------------------------------------------------------------


@pytest.mark.parametrize("data", [None, {}])
def test_new_entity_state_is_a_free_lock(data):
    lock = IpLock.from_dict(data)

    assert lock == IpLock()
    assert lock.holder is None
    assert lock.queue == []


def test_lock_state_round_trips_through_json():
    lock = held_by_a_with_waiters("B", "C")
    ask(lock, "B", T0 + LEASE - 1, wake="wake-B-2")
    ask(lock, "D", T0 + LEASE + 1)  # A expires (last_expired is set); C is stale

    restored = IpLock.from_dict(json.loads(json.dumps(lock.to_dict())))

    assert restored == lock
    assert restored.last_expired == "A lost the lock: its lease ran out"
    assert restored.queue == [
        Waiter("B", FAR, T0 + LEASE - 1, "wake-B-2"),
        Waiter("D", FAR, T0 + LEASE + 1, None),
    ]


def test_restored_lock_keeps_serving_in_order():
    lock = held_by_a_with_waiters("B", "C")
    restored = IpLock.from_dict(json.loads(json.dumps(lock.to_dict())))

    assert restored.release("A", T0 + 5) == Wake("B", "wake-B")
    assert ask(restored, "C", T0 + 6).granted is False
    assert ask(restored, "B", T0 + 7).granted is True


def test_grant_and_wake_are_json_ready():
    assert Grant(True, 0, "A", 5.0).to_dict() == {
        "granted": True,
        "position": 0,
        "holder": "A",
        "lease_until": 5.0,
        "refused": False,
        "member_nics": None,
    }
    assert Grant(False, 2, "A").to_dict()["lease_until"] is None
    assert Wake("B", "wake-B").to_dict() == {"request_id": "B", "event": "wake-B"}


def test_a_request_past_its_deadline_is_neither_granted_nor_queued():
    lock = IpLock()
    grant = ask(lock, "late", T0, deadline=T0 - 1)
    assert grant.granted is False
    assert queue_of(lock) == []
    assert lock.holder is None


# -- one caller's share of the queue ---------------------------------------------


def test_a_caller_with_max_pending_requests_is_refused_and_not_queued():
    lock = IpLock()
    assert lock.try_acquire("A1", T0 + 100, T0, LEASE, caller="a", max_pending=2).granted
    assert lock.try_acquire("A2", T0 + 100, T0 + 1, LEASE, caller="a", max_pending=2).position == 1

    refused = lock.try_acquire("A3", T0 + 100, T0 + 2, LEASE, caller="a", max_pending=2)

    assert refused == Grant(False, 0, "A1", refused=True)
    assert queue_of(lock) == ["A2"]
    assert lock.pending_of("a") == 2


def test_another_caller_is_not_held_back_by_a_flooding_one():
    lock = IpLock()
    for i in range(2):
        lock.try_acquire(f"A{i}", T0 + 100, T0 + i, LEASE, caller="a", max_pending=2)
    for i in range(2, 300):
        lock.try_acquire(f"A{i}", T0 + 100, T0 + i / 100, LEASE, caller="a", max_pending=2)

    grant = lock.try_acquire("B", T0 + 100, T0 + 5, LEASE, caller="b", max_pending=2)

    assert grant.position == 2  # behind a's queued request only, not 298 of them
    assert queue_of(lock) == ["A1", "B"]


def test_a_queued_request_asking_again_is_never_refused():
    lock = IpLock()
    lock.try_acquire("A1", T0 + 100, T0, LEASE, caller="a", max_pending=2)
    lock.try_acquire("A2", T0 + 100, T0 + 1, LEASE, caller="a", max_pending=2)

    again = lock.try_acquire("A2", T0 + 100, T0 + 2, LEASE, caller="a", max_pending=1)

    assert (again.refused, again.position) == (False, 1)


def test_a_released_or_expired_request_frees_its_callers_place():
    lock = IpLock()
    lock.try_acquire("A1", T0 + 100, T0, LEASE, caller="a", max_pending=1)
    lock.release("A1", T0 + 1)

    assert lock.try_acquire("A2", T0 + 100, T0 + 2, LEASE, caller="a", max_pending=1).granted
    assert lock.pending_of("a") == 1


def test_the_holder_leaves_the_members_nics_it_learned_for_the_next_holder():
    lock = IpLock()
    assert ask(lock, "A", T0).member_nics is None  # nothing learned yet
    lock.release("A", T0 + 1, {"vm1": ["nic1"], "vm2": ["nic2"]})
    assert ask(lock, "B", T0 + 2).member_nics == {"vm1": ["nic1"], "vm2": ["nic2"]}
    lock.release("B", T0 + 3, {"vm2": ["nic2b"]})  # relearned: replaces vm2's only
    restored = IpLock.from_dict(json.loads(json.dumps(lock.to_dict())))
    assert ask(restored, "C", T0 + 4).member_nics == {"vm1": ["nic1"], "vm2": ["nic2b"]}


def test_only_the_holder_can_leave_member_nics():
    lock = IpLock()
    ask(lock, "A", T0)
    ask(lock, "B", T0)
    lock.release("B", T0 + 1, {"vm1": ["forged"]})  # B only leaves the queue
    lock.release("A", T0 + 2)
    assert ask(lock, "C", T0 + 3).member_nics is None
