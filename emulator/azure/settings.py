"""Knobs that the command line sets and the control API may change at run time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["MIRID_MODES", "NIC_UPDATE_MODES", "Settings"]

# Which tokens carry xms_mirid: all of them, only those for ARM (Entra ID: a first-party-only
# claim, so not in tokens for an app registration's audience), or none.
MIRID_MODES = ("all", "arm-only", "never")
# How a NIC PUT is answered: "sync" holds the PUT for the update's duration and answers
# Succeeded; "async" answers Updating at once (Retry-After, poll the operation); "mixed"
# alternates, sync first. Azure was recorded doing both (docs/local-azure.md).
NIC_UPDATE_MODES = ("mixed", "sync", "async")


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
    nic_update_mode: str = "mixed"
    in_use_with_resource: bool = False

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
            kind = {"float": float, "int": int, "str": str, "bool": _to_bool}[str(types[key])]
            converted = kind(value)
            if key == "mirid_claim" and converted not in MIRID_MODES:
                raise ValueError(f"mirid_claim must be one of {MIRID_MODES}")
            if key == "nic_update_mode" and converted not in NIC_UPDATE_MODES:
                raise ValueError(f"nic_update_mode must be one of {NIC_UPDATE_MODES}")
            if isinstance(converted, int | float) and converted < 0:
                raise ValueError(f"{key} must not be negative")
            setattr(self, key, converted)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"not a boolean: {value!r}")
