"""ARM's error envelopes, raised by handlers and rendered by the ARM middleware.

Two shapes are recorded: errors ARM itself answers (authentication, throttling, a
missing api-version, a resource or group that does not exist) carry ``code`` and
``message`` only; errors of the network resource provider (validation, conflicts,
failed operations) add ``"details": []``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArmError", "gateway_not_found", "not_found"]


@dataclass(eq=False)
class ArmError(Exception):
    """An ARM error response: ``{"error": {"code", "message"[, "details": []]}}``.

    ``gateway`` marks an error ARM answers itself (no ``details``); otherwise the
    resource provider answers (``details: []``).
    """

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    gateway: bool = False

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        """The JSON body ARM sends for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if not self.gateway:
            error["details"] = []
        return {"error": error}


def gateway_not_found(code: str, message: str) -> ArmError:
    """A 404 that ARM answers before any resource provider: ``x-ms-failure-cause: gateway``."""
    return ArmError(404, code, message, headers={"x-ms-failure-cause": "gateway"}, gateway=True)


def not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    """ARM's 404 for a missing top-level resource in an existing resource group."""
    return gateway_not_found(
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' "
        "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )
