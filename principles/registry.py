"""Load the versioned principles registry data file (used by the data migration and tests)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

REGISTRY_FILE = Path(__file__).resolve().parent / "data" / "registry_v1.json"


def read_registry(path: Path = REGISTRY_FILE) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    numbers = [p["number"] for p in data["principles"]]
    if numbers != list(range(1, 13)):
        raise ValueError(f"{path}: principles must be numbered 1-12 in order, got {numbers}")
    for category in data["harm_categories"]:
        unknown = set(category["principles"]) - set(numbers)
        if unknown:
            raise ValueError(f"{path}: {category['code']} maps to unknown principles {unknown}")
    return data


def load_registry(principle_model: Any, category_model: Any, path: Path = REGISTRY_FILE) -> None:
    """Create or update principles and harm categories from the data file (idempotent)."""
    data = read_registry(path)
    by_number = {}
    for row in data["principles"]:
        principle, _ = principle_model.objects.update_or_create(
            number=row["number"],
            defaults={
                "theme": row["theme"],
                "title": row["title"],
                "text": row["text"],
                "source_url": row["source_url"],
                "checked": row["checked"],
                "data_version": data["version"],
            },
        )
        by_number[principle.number] = principle
    for row in data["harm_categories"]:
        category, _ = category_model.objects.update_or_create(
            code=row["code"],
            defaults={
                "label": row["label"],
                "description": row["description"],
                "default_priority": row["default_priority"],
                "sla": timedelta(minutes=row["sla_minutes"]),
                "is_illegal_content": row["is_illegal_content"],
            },
        )
        category.principles.set([by_number[n] for n in row["principles"]])
