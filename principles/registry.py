"""Read, validate and load a versioned principles registry data file.

Used by the data migrations (with historical models), the `registry_install` service behind
`manage.py load_principles`, and the tests' reference-data fixture.

Two formats are read:
- format 1 (`registry_v1.json`, no `format` key): principles carry `checked` only. Their
  provenance defaults to `voluntary_principles` when checked, else `unverified`.
- format 2 (`"format": 2`): every principle also carries `provenance` and `source_title`, and
  `checked` must agree with the provenance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.errors import DomainError

from .models import CHECKED_PROVENANCES, Priority, Provenance

DATA_DIR = Path(__file__).resolve().parent / "data"
REGISTRY_V1_FILE = DATA_DIR / "registry_v1.json"
REGISTRY_V2_FILE = DATA_DIR / "registry_v2.json"
REGISTRY_FILE = REGISTRY_V2_FILE  # the version a fresh database gets

NUMBERS = list(range(1, 13))
# Field limits of the models; checked here so a bad file is refused before anything is written.
_MAX_LENGTH = {"theme": 120, "title": 200, "source_title": 200}
_MAX_VERSION_LENGTH = 20
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")


class RegistryError(DomainError, ValueError):
    """A registry file that cannot be installed; the message names the file and the problem."""


_Fail = Callable[[str], RegistryError]


def read_registry(path: Path = REGISTRY_FILE) -> dict[str, Any]:
    """Read and validate a registry file; raises `RegistryError` naming the problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return parse_registry(raw, source=str(path))


def parse_registry(raw: bytes | str, *, source: str = "registry") -> dict[str, Any]:
    """Validate a registry document and return it normalised: every principle has `provenance`
    and `source_title`, whatever the format."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{source}: the top level must be a JSON object")

    def fail(problem: str) -> RegistryError:
        return RegistryError(f"{source}: {problem}")

    fmt = data.get("format", 1)
    if fmt not in (1, 2):
        raise fail(f"unknown format {fmt!r} (this version reads formats 1 and 2)")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail("'version' must be a non-empty string")
    if len(version) > _MAX_VERSION_LENGTH:
        raise fail(f"'version' is longer than {_MAX_VERSION_LENGTH} characters")
    principles = data.get("principles")
    categories = data.get("harm_categories")
    if not isinstance(principles, list) or not all(isinstance(p, dict) for p in principles):
        raise fail("'principles' must be a list of objects")
    if not isinstance(categories, list) or not all(isinstance(c, dict) for c in categories):
        raise fail("'harm_categories' must be a list of objects")

    numbers = [p.get("number") for p in principles]
    if any(isinstance(n, bool) for n in numbers) or numbers != NUMBERS:
        raise fail(f"principles must be numbered 1-12 in order, got {numbers}")
    for row in principles:
        _check_principle(row, fmt=fmt, fail=fail)

    codes: set[str] = set()
    for row in categories:
        _check_category(row, codes=codes, fail=fail)
    return data


def _check_principle(row: dict[str, Any], *, fmt: int, fail: _Fail) -> None:
    n = row["number"]
    required = ["theme", "title", "text", "source_url", "checked"]
    if fmt == 2:
        required += ["provenance", "source_title"]
    missing = [key for key in required if key not in row]
    if missing:
        raise fail(f"principle {n}: missing {', '.join(missing)}")
    for key in ("theme", "title", "text", "source_url"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise fail(f"principle {n}: '{key}' must be a non-empty string")
    if not row["source_url"].startswith("https://"):
        raise fail(f"principle {n}: 'source_url' must be an https:// URL")
    if not isinstance(row["checked"], bool):
        raise fail(f"principle {n}: 'checked' must be true or false")
    # Format 1 files predate provenance: a checked wording was the Voluntary Principles'.
    default = Provenance.VOLUNTARY_PRINCIPLES if row["checked"] else Provenance.UNVERIFIED
    row.setdefault("provenance", str(default))
    row.setdefault("source_title", "")
    if row["provenance"] not in Provenance.values:
        raise fail(
            f"principle {n}: provenance {row['provenance']!r} is not one of "
            f"{', '.join(Provenance.values)}"
        )
    if not isinstance(row["source_title"], str):
        raise fail(f"principle {n}: 'source_title' must be a string")
    for key, limit in _MAX_LENGTH.items():
        if len(row[key]) > limit:
            raise fail(f"principle {n}: '{key}' is longer than {limit} characters")
    should_be_checked = row["provenance"] in CHECKED_PROVENANCES
    if row["checked"] is not should_be_checked:
        raise fail(
            f"principle {n}: checked is {str(row['checked']).lower()} but provenance "
            f"{row['provenance']!r} requires checked {str(should_be_checked).lower()} "
            f"(only {' and '.join(sorted(CHECKED_PROVENANCES))} wording counts as checked)"
        )


def _check_category(row: dict[str, Any], *, codes: set[str], fail: _Fail) -> None:
    code = row.get("code")
    if not isinstance(code, str) or not _SLUG.fullmatch(code):
        raise fail(f"harm category code {code!r} must be a slug of at most 50 characters")
    if code in codes:
        raise fail(f"harm category {code} appears twice")
    codes.add(code)
    missing = [
        key
        for key in (
            "label",
            "description",
            "principles",
            "default_priority",
            "sla_minutes",
            "is_illegal_content",
        )
        if key not in row
    ]
    if missing:
        raise fail(f"harm category {code}: missing {', '.join(missing)}")
    label = row["label"]
    if not isinstance(label, str) or not label.strip() or len(label) > 120:
        raise fail(f"harm category {code}: 'label' must be 1-120 characters")
    if not isinstance(row["description"], str):
        raise fail(f"harm category {code}: 'description' must be a string")
    mapped = row["principles"]
    if not isinstance(mapped, list) or not all(isinstance(n, int) for n in mapped):
        raise fail(f"harm category {code}: 'principles' must be a list of numbers")
    unknown = set(mapped) - set(NUMBERS)
    if unknown:
        raise fail(f"{code} maps to unknown principles {sorted(unknown)}")
    if row["default_priority"] not in Priority.values:
        raise fail(f"harm category {code}: unknown default_priority {row['default_priority']!r}")
    sla = row["sla_minutes"]
    if not isinstance(sla, int) or isinstance(sla, bool) or sla <= 0:
        raise fail(f"harm category {code}: 'sla_minutes' must be a positive whole number")
    if not isinstance(row["is_illegal_content"], bool):
        raise fail(f"harm category {code}: 'is_illegal_content' must be true or false")


def load_registry(
    principle_model: Any,
    category_model: Any,
    path: Path = REGISTRY_FILE,
    *,
    data: dict[str, Any] | None = None,
) -> None:
    """Create or update principles and harm categories from the data file (idempotent).

    Works with historical models: fields the model does not have yet (a migration before the
    one that added them) are left out, so an old data migration keeps working.
    """
    if data is None:
        data = read_registry(path)
    fields = {f.name for f in principle_model._meta.get_fields()}
    by_number = {}
    for row in data["principles"]:
        defaults = {
            "theme": row["theme"],
            "title": row["title"],
            "text": row["text"],
            "source_url": row["source_url"],
            "source_title": row["source_title"],
            "provenance": row["provenance"],
            "checked": row["checked"],
            "data_version": data["version"],
        }
        principle, _ = principle_model.objects.update_or_create(
            number=row["number"], defaults={k: v for k, v in defaults.items() if k in fields}
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
