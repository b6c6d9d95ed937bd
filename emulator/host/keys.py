"""Host keys: master, default function key and the Durable extension's system key.

Kept in the state folder (as the host keeps them in storage) so they survive a
restart, and never printed: callers read them from the file.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["HostKeys", "load_or_create_keys"]


@dataclass(frozen=True)
class HostKeys:
    """The keys an HTTP caller may present (``code=`` or ``x-functions-key``)."""

    master: str
    function: str
    durabletask_extension: str

    def allows(self, presented: str | None, auth_level: str) -> bool:
        """Whether ``presented`` opens a route of ``auth_level``."""
        if auth_level == "anonymous":
            return True
        if not presented:
            return False
        if secrets.compare_digest(presented, self.master):
            return True
        if auth_level == "function":
            return secrets.compare_digest(presented, self.function)
        if auth_level == "system":
            return secrets.compare_digest(presented, self.durabletask_extension)
        return False


def load_or_create_keys(state_dir: Path) -> tuple[HostKeys, Path]:
    """Read ``keys.json`` from the state folder, creating it (mode 600) if absent."""
    path = state_dir / "keys.json"
    if path.exists():
        return HostKeys(**json.loads(path.read_text())), path
    keys = HostKeys(
        master=secrets.token_urlsafe(32),
        function=secrets.token_urlsafe(32),
        durabletask_extension=secrets.token_urlsafe(32),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(keys), f)
    return keys, path
