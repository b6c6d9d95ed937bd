"""Fault injection: rules that make the next N matching requests fail, stall or drop.

Targets: ``arm`` (HTTP requests to the ARM server), ``lro`` (the outcome of the next
NIC PUT operations), ``imds`` (VM token/metadata endpoints), ``identity`` (the Function
app's identity endpoint).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ACTIONS", "TARGETS", "FaultInjector", "FaultRule"]

TARGETS = ("arm", "lro", "imds", "identity")
ACTIONS = ("error", "delay", "drop", "fail")


@dataclass
class FaultRule:
    """One rule; ``remaining`` counts down on each match, the rule ends at 0."""

    target: str
    action: str
    method: str = "*"
    path: str = ".*"
    vm: str | None = None
    remaining: int = 1
    status: int = 500
    code: str = "InternalServerError"
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    id: int = 0
    hits: int = 0
    _pattern: re.Pattern[str] = field(default=re.compile(".*"), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        if self.remaining < 1:
            raise ValueError("count must be at least 1")
        self._pattern = re.compile(self.path, re.IGNORECASE)
        self.method = self.method.upper()

    def matches(self, target: str, method: str, path: str, vm: str | None) -> bool:
        """True when this rule applies to the request."""
        return (
            self.remaining > 0
            and self.target == target
            and self.method in ("*", method.upper())
            and (self.vm is None or (vm is not None and self.vm.lower() == vm.lower()))
            and self._pattern.search(path) is not None
        )

    def give_back(self) -> None:
        """Undo one match: the request it matched did not use it (e.g. a refused PUT)."""
        self.remaining += 1
        self.hits -= 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        record = asdict(self)
        record.pop("_pattern")
        return record


class FaultInjector:
    """The active rules, first added first matched."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate ``rule`` and give it an id."""
        rule.id = next(self._ids)
        self._rules.append(rule)
        return rule

    def take(self, target: str, method: str, path: str, vm: str | None = None) -> FaultRule | None:
        """The first rule matching the request, counted down by one, or None."""
        for rule in self._rules:
            if rule.matches(target, method, path, vm):
                rule.remaining -= 1
                rule.hits += 1
                return rule
        return None

    def rules(self) -> list[FaultRule]:
        """All rules, including spent ones (remaining 0), for inspection."""
        return list(self._rules)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()
