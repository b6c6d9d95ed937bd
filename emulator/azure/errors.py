"""ARM's error envelope, raised by handlers and rendered by the ARM middleware."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArmError", "not_found"]


@dataclass(eq=False)
class ArmError(Exception):
    """An ARM error response: ``{"error": {"code", "message", "details": []}}``."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    target: str | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        """The JSON body ARM sends for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "details": []}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    """ARM's 404 for a missing top-level resource in an existing resource group."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' "
        "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )
