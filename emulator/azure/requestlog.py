"""What the emulator was asked: a bounded request log and per-principal counters."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PrincipalCounters", "RequestLog", "RequestRecord"]

_MAX_RECORDS = 200_000


@dataclass
class RequestRecord:
    """One request as served (or refused, or dropped)."""

    seq: int
    time: float
    target: str
    method: str
    path: str
    query: str
    status: int
    duration_ms: float
    principal: str | None = None
    kind: str | None = None
    client_request_id: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    fault: str | None = None
    vm: str | None = None


@dataclass
class PrincipalCounters:
    """Reads, writes and throttled requests of one principal at ARM."""

    reads: int = 0
    writes: int = 0
    throttled: int = 0
    errors: int = 0


@dataclass
class RequestLog:
    """Bounded log (oldest dropped first) plus counters keyed by principal object id."""

    records: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=_MAX_RECORDS))
    counters: dict[str, PrincipalCounters] = field(default_factory=dict)
    next_seq: int = 1

    def add(self, record: RequestRecord) -> None:
        """Append ``record`` (its ``seq`` is assigned here) and count it."""
        record.seq = self.next_seq
        self.next_seq += 1
        self.records.append(record)
        if record.target != "arm":
            return
        counters = self.counters.setdefault(record.principal or "anonymous", PrincipalCounters())
        if record.kind == "write":
            counters.writes += 1
        elif record.kind == "read":
            counters.reads += 1
        if record.status == 429 and record.error_code == "SubscriptionRequestsThrottled":
            counters.throttled += 1
        elif record.status >= 400:
            counters.errors += 1

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Records with ``seq`` greater than the given one, oldest first."""
        return [asdict(r) for r in self.records if r.seq > seq]

    def counters_dict(self) -> dict[str, dict[str, int]]:
        """Counters as plain dicts."""
        return {principal: asdict(c) for principal, c in self.counters.items()}

    def clear(self) -> None:
        """Forget records and counters (sequence numbers keep growing)."""
        self.records.clear()
        self.counters.clear()
