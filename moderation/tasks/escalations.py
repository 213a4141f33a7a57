"""Escalation tasks: page on-call leads, repage until acknowledged (beat), check SLAs (beat)."""

from __future__ import annotations

from celery import shared_task

from moderation.services.paging import escalation_page, escalations_repage
from moderation.services.sla import sla_check


@shared_task(name="moderation.page_escalation", acks_late=True)
def page_escalation_task(escalation_id: int, page: int | None = None) -> int:
    return escalation_page(escalation_id=escalation_id, page=page)


@shared_task(name="moderation.repage_escalations")
def repage_escalations_task() -> int:
    """Beat: keep paging unacknowledged escalations, moving up the on-call tiers."""
    return escalations_repage()


@shared_task(name="moderation.sla_check")
def sla_check_task() -> dict[str, int]:
    return sla_check()
