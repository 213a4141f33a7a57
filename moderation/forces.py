"""Reference data: the UK police forces a 999 call is recorded against (data/uk_police_forces.json).

Imports nothing from the project.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path


@cache
def uk_police_forces() -> list[str]:
    path = Path(__file__).resolve().parent / "data" / "uk_police_forces.json"
    return json.loads(path.read_text(encoding="utf-8"))["forces"]
