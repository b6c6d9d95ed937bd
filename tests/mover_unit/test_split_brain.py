"""suspect_split_brain: an acquire that took the IP from a member that had just acquired it."""

from __future__ import annotations

from typing import Any

from mover.split_brain import suspect_split_brain

NIC1 = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/nic1"
NIC2 = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/nic2"


def acquire(
    request_id: str,
    member: str,
    to_nic: str,
    created: str,
    finished: str,
    removed: tuple[tuple[str, str], ...] = (),
    status: str = "succeeded",
) -> dict[str, Any]:
    """An acquire record as the API shows it; ``removed``: (nic, startedAt) of remove steps."""
    steps = [{"name": "find_holder", "status": "succeeded", "startedAt": created}]
    steps += [
        {"name": "remove_ip_config", "status": "succeeded", "nic": nic, "startedAt": at}
        for nic, at in removed
    ]
    return {
        "requestId": request_id,
        "action": "acquire",
        "status": status,
        "caller": {"member": member},
        "createdAt": created,
        "finishedAt": finished,
        "toNic": to_nic,
        "steps": steps,
    }


FIRST = acquire("a", "server01", NIC1, "2026-11-26T12:00:00.000Z", "2026-11-26T12:00:02.000Z")


def test_taking_the_ip_right_after_the_other_member_acquired_it_is_suspected() -> None:
    second = acquire(
        "b",
        "server02",
        NIC2,
        created="2026-11-26T12:00:00.100Z",
        finished="2026-11-26T12:00:06.000Z",
        removed=((NIC1, "2026-11-26T12:00:03.500Z"),),
    )

    found = suspect_split_brain([FIRST], second, 60.0)

    assert found is not None
    assert found.to_api() == {
        "tookFrom": "server01",
        "nic": NIC1,
        "acquiredBy": "a",
        "acquiredAt": "2026-11-26T12:00:02.000Z",
        "takenAt": "2026-11-26T12:00:03.500Z",
        "secondsAfter": 1.5,
        "windowSeconds": 60.0,
        "overlapped": True,
    }


def test_a_takeover_after_the_window_is_an_ordinary_failover() -> None:
    later = acquire(
        "b", "server02", NIC2, "2026-11-26T12:05:00Z", "2026-11-26T12:05:04Z",
        removed=((NIC1, "2026-11-26T12:05:01Z"),),
    )  # fmt: skip
    assert suspect_split_brain([FIRST], later, 60.0) is None
    assert suspect_split_brain([FIRST], later, 600.0) is not None  # the window is the setting


def test_within_the_window_but_queued_after_the_first_finished_is_not_overlapped() -> None:
    soon = acquire(
        "b", "server02", NIC2, "2026-11-26T12:00:10Z", "2026-11-26T12:00:14Z",
        removed=((NIC1, "2026-11-26T12:00:11Z"),),
    )  # fmt: skip
    found = suspect_split_brain([FIRST], soon, 60.0)
    assert found is not None and not found.overlapped and found.seconds_after == 9.0


def test_an_acquire_that_removed_nothing_is_not_suspected() -> None:
    nothing_taken = acquire("b", "server02", NIC2, "2026-11-26T12:00:03Z", "2026-11-26T12:00:04Z")
    assert suspect_split_brain([FIRST], nothing_taken, 60.0) is None


def test_only_the_newest_acquire_of_that_nic_counts() -> None:
    # server01 acquired long ago; server02 got it, then released: the IP went back to
    # server01 by a later acquire that is outside the window.
    old = acquire("old", "server01", NIC1, "2026-11-26T11:00:00Z", "2026-11-26T11:00:02Z")
    taker = acquire(
        "b", "server02", NIC2, "2026-11-26T11:00:30Z", "2026-11-26T11:00:33Z",
        removed=((NIC1, "2026-11-26T11:00:31Z"),),
    )  # fmt: skip
    assert suspect_split_brain([old], taker, 60.0) is not None
    newer = acquire("new", "server01", NIC1, "2026-11-26T10:00:00Z", "2026-11-26T10:00:01Z")
    assert suspect_split_brain([newer, old], taker, 60.0) is not None  # the newest: "old"
    assert suspect_split_brain([old, newer], taker, 60.0) is None  # the newest: 1 h before


def test_releases_failed_acquires_and_a_replayed_append_are_ignored() -> None:
    failed_first = {**FIRST, "status": "failed"}
    second = acquire(
        "b", "server02", NIC2, "2026-11-26T12:00:00Z", "2026-11-26T12:00:06Z",
        removed=((NIC1, "2026-11-26T12:00:03Z"),),
    )  # fmt: skip
    assert suspect_split_brain([failed_first], second, 60.0) is None
    release = {**second, "action": "release"}
    assert suspect_split_brain([FIRST], release, 60.0) is None
    # The record itself already in the history (an append delivered twice) is not "earlier".
    mine = {**second, "toNic": NIC1}
    assert suspect_split_brain([mine], second, 60.0) is None


def test_nic_ids_compare_case_insensitively() -> None:
    second = acquire(
        "b", "server02", NIC2, "2026-11-26T12:00:00Z", "2026-11-26T12:00:06Z",
        removed=((NIC1.upper(), "2026-11-26T12:00:03Z"),),
    )  # fmt: skip
    assert suspect_split_brain([FIRST], second, 60.0) is not None
