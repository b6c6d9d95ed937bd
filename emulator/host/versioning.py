"""Orchestration versioning as the Durable extension does it (ext 3.1+, bundle 4.30+).

host.json ``extensions.durableTask``:

- ``defaultVersion``: the version of an instance started without one, and of
  every sub-orchestration whose action carries none (the parent's version is
  not inherited);
- ``versionMatchStrategy``: ``None`` | ``Strict`` | ``CurrentOrOlder``
  (default): which instance versions this host runs, compared with
  ``defaultVersion``;
- ``versionFailureStrategy``: ``Reject`` (default: the instance is left as it
  is, for a compatible host to run) | ``Fail`` (the instance fails).

Versions compare as the extension documents: null and empty are equal and
older than any other version; two versions that both parse as .NET's
``System.Version`` compare numerically; anything else compares as
case-insensitive strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "VersionRejected",
    "VersioningSettings",
    "compare_versions",
    "versioning_from_host_json",
]

MATCH_STRATEGIES = ("None", "Strict", "CurrentOrOlder")
FAILURE_STRATEGIES = ("Reject", "Fail")

# System.Version.TryParse: 2 to 4 dot-separated non-negative Int32 components.
_VERSION_PART = re.compile(r"^\s*\+?[0-9]+\s*$")
_INT32_MAX = 2**31 - 1


class VersionRejected(Exception):
    """An episode was not run: the instance's version does not match (``Reject``)."""


@dataclass(frozen=True)
class VersioningSettings:
    """The three host.json settings, validated."""

    default_version: str | None = None
    match_strategy: str = "CurrentOrOlder"
    failure_strategy: str = "Reject"

    def new_instance_version(self, requested: str | None) -> str:
        """The version of a new instance (or sub-orchestration): the requested one or the default.

        ``ExecutionStarted.Version`` always has a value: with neither, ``""``
        (what the extension before versioning sent).
        """
        if requested is not None:
            return requested
        return self.default_version or ""

    def mismatch(self, version: str | None) -> str | None:
        """Why this host may not run an instance of ``version``, or None when it may.

        No check without a ``defaultVersion`` (null or empty) or with strategy ``None``.
        """
        if not self.default_version or self.match_strategy == "None":
            return None
        order = compare_versions(version, self.default_version)
        if self.match_strategy == "Strict" and order != 0:
            return (
                f"The orchestration version '{version or ''}' does not match the host's "
                f"defaultVersion '{self.default_version}' (versionMatchStrategy Strict)."
            )
        if self.match_strategy == "CurrentOrOlder" and order > 0:
            return (
                f"The orchestration version '{version or ''}' is newer than the host's "
                f"defaultVersion '{self.default_version}' (versionMatchStrategy CurrentOrOlder)."
            )
        return None


def compare_versions(a: str | None, b: str | None) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b``."""
    if not a and not b:
        return 0
    if not a:
        return -1
    if not b:
        return 1
    parsed_a, parsed_b = _system_version(a), _system_version(b)
    if parsed_a is not None and parsed_b is not None:
        return _sign(parsed_a, parsed_b)
    return _sign(a.upper(), b.upper())


def _system_version(text: str) -> tuple[int, ...] | None:
    """``System.Version`` of ``text``, absent components as -1 (so 1.0 < 1.0.0), or None."""
    parts = text.split(".")
    if not 2 <= len(parts) <= 4 or not all(_VERSION_PART.match(p) for p in parts):
        return None
    numbers = [int(p) for p in parts]
    if any(n > _INT32_MAX for n in numbers):
        return None
    return tuple(numbers + [-1] * (4 - len(numbers)))


def _sign(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def versioning_from_host_json(
    default_version: Any, match_strategy: Any, failure_strategy: Any
) -> VersioningSettings:
    """Validate the host.json values; raise ValueError for what the host would refuse.

    Strategy names are matched case-insensitively, as .NET binds enums; null
    means the default.
    """
    if match_strategy is None:
        match_strategy = "CurrentOrOlder"
    if failure_strategy is None:
        failure_strategy = "Reject"
    if default_version is not None and not isinstance(default_version, str):
        raise ValueError(
            "host.json extensions.durableTask.defaultVersion must be a string or null, "
            f'got {default_version!r} (write a version in quotes, e.g. "1.0")'
        )
    return VersioningSettings(
        default_version=default_version,
        match_strategy=_enum_value("versionMatchStrategy", match_strategy, MATCH_STRATEGIES),
        failure_strategy=_enum_value(
            "versionFailureStrategy", failure_strategy, FAILURE_STRATEGIES
        ),
    )


def _enum_value(setting: str, value: Any, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str):
        for name in allowed:
            if value.strip().lower() == name.lower():
                return name
    raise ValueError(
        f"host.json extensions.durableTask.{setting} must be one of "
        f"{', '.join(allowed)}; got {value!r}"
    )
