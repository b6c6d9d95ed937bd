"""One ARM read of a cluster's NICs serves every ``GET /v1/ips/{ip}`` for a few seconds.

The app's identity shares ARM's read budget (per subscription and principal)
with every cluster's moves, so reading IP state must not cost an ARM list per
call: concurrent readers wait for the one read in flight, later ones reuse it
until it is ``ttl`` seconds old.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mover.planning import NicView

__all__ = ["NicCache", "NicRead"]


@dataclass(frozen=True)
class NicRead:
    """The NICs of one resource group, and when (epoch seconds) ARM was read."""

    nics: tuple[NicView, ...]
    read_at: float


class NicCache:
    """Per resource group: the last read, and a lock so that only one read runs."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._reads: dict[tuple[str, str], NicRead] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def nics(
        self,
        subscription_id: str,
        resource_group: str,
        ttl: float,
        read: Callable[[], Awaitable[list[NicView]]],
    ) -> NicRead:
        """The group's NICs, read with ``read`` unless a read is fresh enough."""
        key = (subscription_id.lower(), resource_group.lower())
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._reads.get(key)
            if cached is not None and self._clock() - cached.read_at < ttl:
                return cached
            started = self._clock()
            fresh = NicRead(tuple(await read()), started)
            self._reads[key] = fresh
            return fresh
