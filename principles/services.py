from __future__ import annotations

from django.db import transaction

from core.audit import Actor, audit_record

from .models import Principle

EDITABLE_FIELDS = ("theme", "title", "text", "source_url", "checked")


def principle_update(*, principle: Principle, actor: Actor, **changes: object) -> Principle:
    """Correct a principle's wording or checked flag; every change is audited with before/after."""
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
