"""Reference data: the UK police forces (data/uk_police_forces.json, versioned).

A 999 call is recorded against one of them, and each is a referral destination (reports).
Imports nothing from the project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

FORCES_FILE = Path(__file__).resolve().parent / "data" / "uk_police_forces.json"


@dataclass(frozen=True)
class PoliceForce:
    code: str  # stable: a renamed force keeps its code
    name: str
    nation: str
    kind: str  # territorial | special


@cache
def _data() -> dict[str, Any]:
    return json.loads(FORCES_FILE.read_text(encoding="utf-8"))


def police_forces_version() -> str:
    return str(_data()["version"])


@cache
def police_forces() -> tuple[PoliceForce, ...]:
    return tuple(PoliceForce(**row) for row in _data()["forces"])


def uk_police_forces() -> list[str]:
    """The forces' names, in the file's order (the 999 call record's choices)."""
    return [force.name for force in police_forces()]


def police_force_by_name(name: str) -> PoliceForce | None:
    return next((force for force in police_forces() if force.name == name), None)
