"""Knobs that the command line sets and the control API may change at run time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["MIRID_MODES", "Settings"]

# Which tokens carry xms_mirid: all of them, only those for ARM (Entra ID: a first-party-only
# claim, so not in tokens for an app registration's audience), or none.
MIRID_MODES = ("all", "arm-only", "never")


@dataclass
class Settings:
    """Run-time behaviour of the emulator (see docs/local-azure.md, "Settings")."""

    nic_update_seconds: float = 2.0
    retry_after: float = 10.0
    read_rate: float = 25.0
    read_burst: int = 250
    write_rate: float = 10.0
    write_burst: int = 200
    token_lifetime: int = 86400
    mirid_claim: str = "arm-only"
    page_size: int = 100

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (known keys only, converted to the field's type).

        Raises ValueError for an unknown key or a bad value.
        """
        types = {f.name: f.type for f in fields(self)}
        for key, value in changes.items():
            if key not in types:
                raise ValueError(f"unknown setting {key!r}")
            kind = {"float": float, "int": int, "str": str}[str(types[key])]
            converted = kind(value)
            if key == "mirid_claim" and converted not in MIRID_MODES:
                raise ValueError(f"mirid_claim must be one of {MIRID_MODES}")
            if isinstance(converted, int | float) and converted < 0:
                raise ValueError(f"{key} must not be negative")
            setattr(self, key, converted)
