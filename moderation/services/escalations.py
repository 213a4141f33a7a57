"""Escalations and the immediate-risk (999) path: open an escalation, mark a child at
immediate risk, acknowledge, record the 999 call, resolve.

The console never dials 999. It makes calling the right thing the fastest thing, and records
who called, when, which force, and the police incident reference. Paging lives in `paging`,
SLA checks in `sla`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor, audit_record
from core.errors import DomainError
from moderation.forces import uk_police_forces
from moderation.hooks import CALL_RECORDED
from moderation.models import Case, Escalation
from moderation.services.paging import escalation_enqueue_page
from principles.models import Priority

IMMEDIATE_RISK_ACK = timedelta(minutes=15)
LEAD_REVIEW_SLA = timedelta(hours=1)


class EscalationError(DomainError):
    """A refused escalation action, with a message for the lead."""


def escalation_open(
    *, case: Case, tier: str, reason: str, actor: Actor, rule: Any = None
) -> tuple[Escalation, bool]:
    """Open a live escalation of this tier on the case, or return the one already live.

    Inside the caller's transaction; paging is enqueued after commit.
    """
    live = Escalation.objects.filter(
        case=case, tier=tier, status__in=["open", "acknowledged"]
    ).first()
    if live is not None:
        return live, False
    now = timezone.now()
    sla = IMMEDIATE_RISK_ACK if tier == Escalation.Tier.IMMEDIATE_RISK else LEAD_REVIEW_SLA
    try:
        with transaction.atomic():
            escalation = Escalation.objects.create(
                case=case,
                tier=tier,
                reason=reason[:5000],
                rule=rule,
                opened_by=actor if getattr(actor, "pk", None) else None,
                opened_at=now,
                sla_due_at=now + sla,
            )
    except IntegrityError:
        # Opened concurrently by another trigger: join it (one live escalation per tier).
        return Escalation.objects.get(
            case=case, tier=tier, status__in=["open", "acknowledged"]
        ), False
    audit_record(
        actor=actor,
        verb="escalation.opened",
        obj=escalation,
        data={
            "case": case.pk,
            "tier": tier,
            "reason": reason[:500],
            "rule": rule.name if rule else None,
        },
    )
    escalation_enqueue_page(escalation)
    return escalation, True


def case_mark_immediate_risk(
    *, case: Case, actor: Actor, reason: str, rule: Any = None
) -> Escalation:
    """One action: the case jumps every queue (P0), on-call leads are paged until one
    acknowledges, and the 999 checklist opens for them."""
    reason = (reason or "").strip() or "marked as a child at immediate risk"
    now = timezone.now()
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if locked.status in (Case.Status.DECIDED, Case.Status.CLOSED):
            # New information about a child at risk reopens the case.
            locked.status = Case.Status.OPEN
            locked.decided_at = None
        locked.immediate_risk = True
        locked.priority = Priority.P0
        locked.sla_due_at = min(locked.sla_due_at, now + IMMEDIATE_RISK_ACK)
        changed = ["status", "decided_at", "immediate_risk", "priority", "sla_due_at"]
        changed += locked.add_reason(f"child at immediate risk: {reason[:300]}", at=now)
        locked.save(update_fields=[*changed, "updated_at"])
        audit_record(
            actor=actor,
            verb="case.immediate_risk",
            obj=locked,
            data={"reason": reason[:500], "rule": rule.name if rule else None},
        )
        escalation, _ = escalation_open(
            case=locked, tier=Escalation.Tier.IMMEDIATE_RISK, reason=reason, actor=actor, rule=rule
        )
    return escalation


def escalation_acknowledge(*, escalation: Escalation, lead: Any) -> Escalation:
    if not lead.has_perm("moderation.work_escalations"):
        raise EscalationError("Only safety leads acknowledge escalations.")
    now = timezone.now()
    with transaction.atomic():
        # Conditional: exactly one lead acknowledges; a second gets a clear error.
        if not Escalation.objects.filter(pk=escalation.pk, status=Escalation.Status.OPEN).update(
            status=Escalation.Status.ACKNOWLEDGED, acknowledged_by=lead, acknowledged_at=now
        ):
            current = Escalation.objects.select_related("acknowledged_by").get(pk=escalation.pk)
            who = current.acknowledged_by.get_username() if current.acknowledged_by else "—"
            raise EscalationError(f"Already {current.status} (by {who}).")
        audit_record(
            actor=lead,
            verb="escalation.acknowledged",
            obj=escalation,
            data={"seconds_to_ack": (now - escalation.opened_at).total_seconds()},
        )
    escalation.refresh_from_db()
    return escalation


def escalation_record_call(
    *,
    escalation: Escalation,
    lead: Any,
    called_at: datetime,
    police_force: str,
    incident_reference: str,
    notes: str = "",
) -> Escalation:
    """Record the 999 call made by the acknowledging lead, then draft the follow-up referral."""
    if police_force not in uk_police_forces():
        raise EscalationError("Choose the police force from the list.")
    if not incident_reference.strip():
        raise EscalationError("Record the police incident or CAD reference.")
    now = timezone.now()
    if called_at > now + timedelta(minutes=1):
        raise EscalationError("The call time is in the future.")
    with transaction.atomic():
        locked = Escalation.objects.select_for_update().get(pk=escalation.pk)
        if locked.status != Escalation.Status.ACKNOWLEDGED or locked.acknowledged_by_id != lead.pk:
            raise EscalationError(
                "Only the lead who acknowledged this escalation records its 999 call."
            )
        if locked.called_at is not None:
            raise EscalationError("The call is already recorded.")
        locked.called_by = lead
        locked.called_at = called_at
        locked.police_force = police_force
        locked.incident_reference = incident_reference.strip()[:100]
        locked.call_notes = notes[:5000]
        locked.save(
            update_fields=[
                "called_by",
                "called_at",
                "police_force",
                "incident_reference",
                "call_notes",
            ]
        )
        audit_record(
            actor=lead,
            verb="escalation.call_recorded",
            obj=locked,
            data={
                "called_at": called_at.isoformat(),
                "police_force": police_force,
                "incident_reference": locked.incident_reference,
            },
        )
        for handler in CALL_RECORDED:
            handler(escalation=locked, actor=lead)
    return locked


def escalation_resolve(*, escalation: Escalation, lead: Any, notes: str) -> Escalation:
    with transaction.atomic():
        if not Escalation.objects.filter(
            pk=escalation.pk, status=Escalation.Status.ACKNOWLEDGED, acknowledged_by=lead
        ).update(status=Escalation.Status.RESOLVED, resolved_at=timezone.now(), notes=notes[:5000]):
            raise EscalationError("Only the lead who acknowledged it can resolve it.")
        audit_record(
            actor=lead, verb="escalation.resolved", obj=escalation, data={"notes": notes[:500]}
        )
    escalation.refresh_from_db()
    return escalation


def escalation_timings(escalation: Escalation) -> list[tuple[str, datetime | None]]:
    return [
        ("Flagged", escalation.case.created_at),
        ("Escalated", escalation.opened_at),
        ("Acknowledged", escalation.acknowledged_at),
        ("999 called", escalation.called_at),
        ("Referred", escalation.referred_at),
    ]
