"""Rule tasks: apply the enabled rules to a case after intake, hashing or a decision."""

from __future__ import annotations

from celery import shared_task

from moderation.rules.services import rules_apply, rules_apply_many


@shared_task(name="moderation.apply_rules", acks_late=True)
def apply_rules_task(case_id: int, event: str) -> list[str]:
    return rules_apply(case_id=case_id, event=event)


@shared_task(name="moderation.apply_rules_batch", acks_late=True)
def apply_rules_batch_task(case_ids: list[int], event: str) -> int:
    """The rules for several cases in one message (batch intake, batch hashing): rules_apply
    is idempotent per case and rule version, so a redelivered batch changes nothing twice."""
    rules_apply_many(case_ids=case_ids, event=event)
    return len(case_ids)
