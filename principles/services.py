from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from core.audit import Actor, audit_record

from .models import HarmCategory, Principle
from .registry import RegistryError, load_registry, parse_registry

EDITABLE_FIELDS = ("theme", "title", "text", "source_url", "source_title", "provenance", "checked")


def principle_update(*, principle: Principle, actor: Actor, **changes: object) -> Principle:
    """Correct a principle's wording, source or provenance; every change is audited with
    before/after."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        current = Principle.objects.select_for_update().get(pk=principle.pk)
        diff = {
            field: {"from": getattr(current, field), "to": value}
            for field, value in changes.items()
            if getattr(current, field) != value
        }
        if not diff:
            return current
        for field, value in changes.items():
            setattr(current, field, value)
        current.save(update_fields=list(diff))
        audit_record(
            actor=actor,
            verb="principle.updated",
            obj=current,
            data={"number": current.number, "changes": diff},
        )
    return current


@dataclass(frozen=True)
class RegistryInstall:
    version: str
    previous_version: str
    sha256: str
    provenance: dict[int, str]


def registry_install(*, path: Path, actor: Actor) -> RegistryInstall:
    """Install a principles registry file (e.g. a version verified against the published code).

    1. Read the file once; its SHA-256 identifies exactly what was installed.
    2. Validate it completely (`principles.registry.parse_registry`): a malformed file raises
       `RegistryError` naming the problem, before anything is written.
    3. In one transaction, update the twelve principles and the harm categories and write one
       `principles.registry_installed` audit event, so the log and the data never disagree.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    data = parse_registry(raw, source=str(path))
    sha256 = hashlib.sha256(raw).hexdigest()
    provenance = {row["number"]: row["provenance"] for row in data["principles"]}
    with transaction.atomic():
        # Locking principle 1 serialises concurrent installs: the second waits, then loads its
        # file over the first, and `previous_version` in its event names what it replaced.
        previous = (
            Principle.objects.select_for_update()
            .order_by("number")
            .values_list("data_version", flat=True)
            .first()
        )
        load_registry(Principle, HarmCategory, data=data)
        audit_record(
            actor=actor,
            verb="principles.registry_installed",
            object_type="principles.registry",
            object_id=data["version"],
            data={
                "version": data["version"],
                "previous_version": previous or "",
                "file": path.name,
                "sha256": sha256,
                # JSON object keys are strings; say so here rather than on the way back.
                "provenance": {str(n): p for n, p in provenance.items()},
            },
        )
    return RegistryInstall(
        version=data["version"],
        previous_version=previous or "",
        sha256=sha256,
        provenance=provenance,
    )
