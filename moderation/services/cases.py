"""Cases as containers: an item joins its subject's open case (or opens one); a lead restricts
a case to leads and assignees."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor, audit_record
from moderation.models import Case, Item
from principles.models import DEFAULT_SLA, HarmCategory, Priority


def case_attach_item(
    *, item: Item, category: HarmCategory | None, actor: Actor, reason: str
) -> Case:
    """Put an item into the open case of its subject, or open a new case. Inside a transaction.

    The partial unique constraint `case_one_open_per_subject` makes "find or create" safe under
    concurrency: a racing creator gets IntegrityError inside a savepoint, and retries the find.
    """
    priority = category.default_priority if category is not None else Priority.P4
    now = timezone.now()
    for _ in range(3):
        case = (
            Case.objects.select_for_update()
            .filter(subject_key=item.subject_key, active=True)
            .first()
        )
        if case is not None:
            changed = case.raise_priority(
                priority=priority, category=category, reason=reason, now=now
            )
            if changed:
                case.save(update_fields=[*changed, "updated_at"])
            break
        try:
            case = Case(
                subject_key=item.subject_key,
                source=item.source,
                priority=priority,
                category=category,
                sla_due_at=now + (category.sla if category else DEFAULT_SLA[Priority.P4]),
            )
            case.add_reason(reason, at=now)
            with transaction.atomic():
                case.save(force_insert=True)
        except IntegrityError:
            continue  # another intake opened the subject's case first: join it
        audit_record(
            actor=actor,
            verb="case.opened",
            obj=case,
            data={"priority": priority, "subject_key": case.subject_key},
        )
        break
    else:  # pragma: no cover - three lost races in a row
        raise RuntimeError(f"Could not attach item {item.pk} to a case")
    item.case = case
    item.save(update_fields=["case"])
    return case


def case_restrict(*, case: Case, actor: Actor) -> None:
    """Restrict a case to safety leads and the people it is assigned to."""
    with transaction.atomic():
        Case.objects.filter(pk=case.pk).update(restricted=True)
        audit_record(actor=actor, verb="case.restricted", obj=case, data={})
