"""SLA checks (beat): a breached escalation pages the next tier; a breached case gets a lead
escalation. Breaches show on the leads' board."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.audit import WORKER, audit_record
from moderation.models import Case, Escalation
from moderation.services.escalations import escalation_open
from moderation.services.paging import escalation_enqueue_page


def sla_check(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: record breaches. A breached escalation pages the next tier; a breached case gets a
    lead escalation. Breaches show on the leads' dashboard."""
    now = now or timezone.now()
    escalations = 0
    for escalation in Escalation.objects.filter(
        status=Escalation.Status.OPEN, sla_due_at__lt=now, breached_at__isnull=True
    ):
        with transaction.atomic():
            if Escalation.objects.filter(pk=escalation.pk, breached_at__isnull=True).update(
                breached_at=now, level=escalation.level + 1
            ):
                audit_record(
                    actor=WORKER,
                    verb="escalation.sla_breached",
                    obj=escalation,
                    data={"level": escalation.level + 1},
                )
                escalations += 1
                escalation_enqueue_page(escalation)
    cases = 0
    for case in Case.objects.filter(active=True, sla_due_at__lt=now, sla_breached_at__isnull=True)[
        :500
    ]:
        with transaction.atomic():
            if Case.objects.filter(pk=case.pk, sla_breached_at__isnull=True).update(
                sla_breached_at=now
            ):
                audit_record(
                    actor=WORKER,
                    verb="case.sla_breached",
                    obj=case,
                    data={"due": case.sla_due_at.isoformat()},
                )
                escalation_open(
                    case=case,
                    tier=Escalation.Tier.LEAD,
                    actor=WORKER,
                    reason=f"SLA breached (due {case.sla_due_at:%Y-%m-%d %H:%M} UTC)",
                )
                cases += 1
    return {"escalations": escalations, "cases": cases}
