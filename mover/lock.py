"""The per-IP lock: first come, first served, with a lease so a dead holder frees it.

Python Durable Functions has no entity critical sections, so each IP has a
lock entity holding this state, and each request's orchestration asks
``try_acquire`` until it is granted. Only the head of the queue can be granted
the lock; a holder that stops renewing its lease loses it to the next request
that asks (until then it may still renew); waiters that stop
asking, or whose deadline passed, leave the queue. Times are epoch seconds
passed in by the caller (the orchestration's replay-safe clock).

Each request carries its caller (the identity that asked); a caller may have
at most ``max_pending`` requests holding or waiting for the lock, so that one
member's flood cannot push another member's request further back: an extra
one is refused and never queued.

A waiter names the external event that should wake it (a new name each time:
the Python SDK mishandles repeated buffered events of one name); ``release``
returns whom to wake, so the lock passes on at once instead of at the next
poll.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Grant", "IpLock", "Waiter", "Wake"]

# A waiter polls every lock_poll_seconds; one unseen for this long is gone
# (its orchestration was terminated or failed).
STALE_WAITER_SECONDS = 60.0


@dataclass
class Waiter:
    """A request waiting for the lock."""

    request_id: str
    deadline: float
    last_seen: float
    wake_event: str | None = None
    caller: str | None = None


@dataclass(frozen=True)
class Grant:
    """The answer to ``try_acquire``."""

    granted: bool
    position: int  # 0 when granted; else 1-based place in the queue
    holder: str | None
    lease_until: float | None = None
    # Not queued: the caller already has max_pending requests holding or waiting.
    refused: bool = False
    # To the request granted: the members' NIC ids that earlier moves learned.
    member_nics: dict[str, list[str]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Wake:
    """Raise ``event`` on orchestration ``request_id``: the lock is free and it is next."""

    request_id: str
    event: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class IpLock:
    """The state of one IP's lock."""

    holder: str | None = None
    since: float | None = None
    lease_until: float | None = None
    holder_caller: str | None = None
    queue: list[Waiter] = field(default_factory=list)
    # Why the last holder lost the lock without releasing it, for the audit.
    last_expired: str | None = None
    # The NIC ids of the cluster's members (VM id, lower case -> NIC ids) as the last
    # move learned them from their VMs: kept here, durably, so that the next move
    # (in any process, after any restart) need not read the VMs again.
    member_nics: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IpLock:
        """From the entity's state (None for a new entity)."""
        if not data:
            return cls()
        return cls(
            holder=data.get("holder"),
            since=data.get("since"),
            lease_until=data.get("lease_until"),
            holder_caller=data.get("holder_caller"),
            queue=[Waiter(**w) for w in data.get("queue", [])],
            last_expired=data.get("last_expired"),
            member_nics=dict(data.get("member_nics") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The entity's state."""
        return asdict(self)

    def try_acquire(
        self,
        request_id: str,
        deadline: float,
        now: float,
        lease_seconds: float,
        wake_event: str | None = None,
        caller: str | None = None,
        max_pending: int | None = None,
    ) -> Grant:
        """Grant the lock to ``request_id`` if it is free and the request is first in line.

        A request not yet queued joins the end of the queue, unless its
        ``caller`` already has ``max_pending`` requests holding or waiting
        (refused, not queued); ``wake_event`` is the event to raise on it when
        it becomes first and the lock is free. The holder asking again just
        renews its lease.
        """
        self._expire(now)
        if self.holder == request_id:
            self.lease_until = now + lease_seconds
            return Grant(True, 0, self.holder, self.lease_until)
        if deadline <= now:
            # Too late: never granted, and not queued either.
            self.queue = [w for w in self.queue if w.request_id != request_id]
            return Grant(False, 0, self.holder)
        waiter = self._waiter(request_id)
        if waiter is None:
            if max_pending is not None and caller and self.pending_of(caller) >= max_pending:
                return Grant(False, 0, self.holder, refused=True)
            waiter = Waiter(request_id, deadline, now, caller=caller)
            self.queue.append(waiter)
        waiter.last_seen = now
        waiter.wake_event = wake_event
        if self.holder is None and self.queue[0] is waiter:
            self.queue.pop(0)
            self.holder, self.since, self.lease_until = request_id, now, now + lease_seconds
            self.holder_caller = waiter.caller
            return Grant(
                True, 0, self.holder, self.lease_until, member_nics=self.member_nics or None
            )
        return Grant(False, self.queue.index(waiter) + 1, self.holder)

    def renew(self, request_id: str, now: float, lease_seconds: float) -> bool:
        """Extend the holder's lease; False if ``request_id`` no longer holds the lock.

        A holder whose lease ran out still holds the lock until another request
        takes it (``try_acquire``): a slow holder that nobody overtook keeps
        it, so slowness alone never ends a move; a dead one is passed over.
        """
        if self.holder == request_id:
            self.lease_until = now + lease_seconds
            self._expire(now)
            return True
        self._expire(now)
        return False

    def release(
        self, request_id: str, now: float, member_nics: dict[str, list[str]] | None = None
    ) -> Wake | None:
        """Give up the lock or a place in the queue; whom to wake, if anyone.

        The holder may leave the members' NIC ids it learned (``member_nics``) for the
        next holder; they replace what was kept for those members.
        """
        if self.holder == request_id:
            if member_nics:
                self.member_nics = {**self.member_nics, **member_nics}
            self.holder = self.since = self.lease_until = self.holder_caller = None
        else:
            self.queue = [w for w in self.queue if w.request_id != request_id]
        self._expire(now)
        if self.holder is None and self.queue and self.queue[0].wake_event:
            return Wake(self.queue[0].request_id, self.queue[0].wake_event)
        return None

    def pending_of(self, caller: str) -> int:
        """How many requests of ``caller`` hold or wait for the lock."""
        held = 1 if self.holder is not None and self.holder_caller == caller else 0
        return held + sum(1 for w in self.queue if w.caller == caller)

    def _waiter(self, request_id: str) -> Waiter | None:
        return next((w for w in self.queue if w.request_id == request_id), None)

    def _expire(self, now: float) -> None:
        if self.holder is not None and self.lease_until is not None and now >= self.lease_until:
            self.last_expired = f"{self.holder} lost the lock: its lease ran out"
            self.holder = self.since = self.lease_until = self.holder_caller = None
        self.queue = [
            w for w in self.queue if w.deadline > now and now - w.last_seen < STALE_WAITER_SECONDS
        ]
