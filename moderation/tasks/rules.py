"""Rule tasks: apply the enabled rules to a case after intake, hashing or a decision."""

from __future__ import annotations

from celery import shared_task

from moderation.rules.services import rules_apply


@shared_task(name="moderation.apply_rules", acks_late=True)
def apply_rules_task(case_id: int, event: str) -> list[str]:
    return rules_apply(case_id=case_id, event=event)
