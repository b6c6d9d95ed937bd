"""The deployment files under infra/, loaded once per test session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"


def load(name: str) -> Any:
    """A JSON file of infra/ (strict JSON: ARM's comment extension is not used here)."""
    return json.loads((INFRA / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load("main.json")


@pytest.fixture(scope="session")
def parameters_example() -> dict[str, Any]:
    return load("main.parameters.example.json")


@pytest.fixture(scope="session")
def role_actions() -> list[str]:
    return load("role-actions.json")


@pytest.fixture(scope="session")
def action_map() -> dict[str, Any]:
    return load("arm-request-to-action.json")
