"""Escalations and the immediate-risk (999) path: open, page on-call leads until one
acknowledges, record the 999 call, resolve; SLA breach checks.

The console never dials 999. It makes calling the right thing the fastest thing, and records
who called, when, which force, and the police incident reference.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core import outbound
from core.audit import WORKER, Actor, audit_record
from principles.models import Priority

from .hooks import CALL_RECORDED
from .models import Case, Escalation, Notification, OnCallOverride, OnCallShift

logger = logging.getLogger(__name__)

IMMEDIATE_RISK_ACK = timedelta(minutes=15)
LEAD_REVIEW_SLA = timedelta(hours=1)


class EscalationError(Exception):
    """A refused escalation action, with a message for the lead."""


@cache
def uk_police_forces() -> list[str]:
    path = Path(__file__).resolve().parent / "data" / "uk_police_forces.json"
    return json.loads(path.read_text(encoding="utf-8"))["forces"]


# --- Opening ----------------------------------------------------------------------------------


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
    escalation_id = escalation.pk
    transaction.on_commit(lambda: _enqueue_page(escalation_id))
    return escalation, True


def _enqueue_page(escalation_id: int) -> None:
    from .tasks import page_escalation

    try:
        page_escalation.delay(escalation_id)
    except Exception:  # noqa: BLE001 — broker down: beat's repage catches it within a minute
        logger.warning("Could not enqueue paging for escalation %s", escalation_id)


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
        locked.priority_reasons = [
            *locked.priority_reasons,
            {
                "at": now.isoformat(),
                "priority": 0,
                "reason": f"child at immediate risk: {reason[:300]}",
            },
        ]
        locked.save()
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


# --- On call and paging -------------------------------------------------------------------------


def oncall_users(*, level: int = 1, at: datetime | None = None) -> list[Any]:
    """Who to page at this level: overrides first, then the weekly rota; if nobody is on the
    rota at that level, every active safety lead (nobody may go unpaged)."""
    at = at or timezone.now()
    users = get_user_model().objects.filter(is_active=True)
    override_ids = OnCallOverride.objects.filter(
        starts_at__lte=at, ends_at__gt=at, tier__lte=level
    ).values("user")
    shift_ids = OnCallShift.objects.filter(
        weekday=at.weekday(), starts__lte=at.time(), ends__gt=at.time(), tier__lte=level
    ).values("user")
    chosen = list(users.filter(Q(pk__in=override_ids) | Q(pk__in=shift_ids)).distinct())
    if chosen:
        return chosen
    return list(users.filter(groups__name__in=["Safety lead", "Admin"]).distinct())


def _page_text(escalation: Escalation) -> tuple[str, str, dict[str, Any]]:
    """Identifiers and a link only: no content, no media, no subject details."""
    link = f"{settings.SITE_URL}/escalations/{escalation.pk}/"
    urgent = escalation.tier == Escalation.Tier.IMMEDIATE_RISK
    subject = (
        f"[Safeguard] {'CHILD AT IMMEDIATE RISK' if urgent else 'Escalation'}: "
        f"case {escalation.case.reference}"
    )
    body = (
        f"{escalation.get_tier_display()} on case {escalation.case.reference}.\n"
        f"Acknowledge now: {link}\n"
        + ("If a child is at immediate risk, call 999.\n" if urgent else "")
    )
    payload = {
        "event": "escalation.page",
        "escalation_id": escalation.pk,
        "case_id": escalation.case_id,
        "case_reference": escalation.case.reference,
        "tier": escalation.tier,
        "level": escalation.level,
        "url": link,
    }
    return subject, body, payload


def escalation_page(*, escalation_id: int) -> int:
    """Page the on-call leads of the escalation's current level (email and webhook).

    Network I/O happens outside any transaction; each notification is recorded afterwards.
    Returns the number of notifications sent.
    """
    escalation = (
        Escalation.objects.select_related("case")
        .filter(pk=escalation_id, status=Escalation.Status.OPEN)
        .first()
    )
    if escalation is None:
        return 0  # acknowledged or resolved meanwhile: stop paging
    subject, body, payload = _page_text(escalation)
    records: list[Notification] = []
    recipients = [u.email for u in oncall_users(level=escalation.level) if u.email]
    if recipients:
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
            records.append(
                Notification(
                    escalation=escalation,
                    channel="email",
                    recipient=", ".join(recipients),
                    subject=subject,
                    body=body,
                )
            )
        except Exception as exc:  # noqa: BLE001 — recorded; the webhook may still reach someone
            records.append(
                Notification(
                    escalation=escalation,
                    channel="email",
                    recipient=", ".join(recipients),
                    subject=subject,
                    body=body,
                    status="failed",
                    error=str(exc)[:2000],
                )
            )
    if settings.SAFEGUARD_PAGING_WEBHOOK_URL:
        try:
            outbound.send(settings.SAFEGUARD_PAGING_WEBHOOK_URL, payload, {})
            records.append(
                Notification(
                    escalation=escalation,
                    channel="webhook",
                    recipient=settings.SAFEGUARD_PAGING_WEBHOOK_URL,
                    subject=subject,
                    body=json.dumps(payload),
                )
            )
        except outbound.OutboundError as exc:
            records.append(
                Notification(
                    escalation=escalation,
                    channel="webhook",
                    recipient=settings.SAFEGUARD_PAGING_WEBHOOK_URL,
                    subject=subject,
                    body=json.dumps(payload),
                    status="failed",
                    error=str(exc)[:2000],
                )
            )
    with transaction.atomic():
        Notification.objects.bulk_create(records)
        Escalation.objects.filter(pk=escalation.pk).update(
            page_count=escalation.page_count + 1, last_paged_at=timezone.now()
        )
        audit_record(
            actor=WORKER,
            verb="escalation.paged",
            obj=escalation,
            data={
                "level": escalation.level,
                "recipients": len(recipients),
                "channels": [r.channel for r in records if r.status == "sent"],
            },
        )
    return len(records)


def escalations_due_for_repage(*, now: datetime | None = None) -> list[int]:
    """Open (unacknowledged) escalations whose last page is older than the repage interval;
    every `SAFEGUARD_PAGES_PER_LEVEL` unanswered pages move paging to the next tier."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SAFEGUARD_REPAGE_SECONDS)
    due = list(
        Escalation.objects.filter(status=Escalation.Status.OPEN).filter(
            Q(last_paged_at__lt=cutoff) | Q(last_paged_at__isnull=True)
        )
    )
    for escalation in due:
        if (
            escalation.page_count
            and escalation.page_count % settings.SAFEGUARD_PAGES_PER_LEVEL == 0
            and escalation.page_count // settings.SAFEGUARD_PAGES_PER_LEVEL >= escalation.level
        ):
            with transaction.atomic():
                Escalation.objects.filter(pk=escalation.pk).update(level=escalation.level + 1)
                audit_record(
                    actor=WORKER,
                    verb="escalation.next_tier",
                    obj=escalation,
                    data={"level": escalation.level + 1, "unanswered_pages": escalation.page_count},
                )
    return [e.pk for e in due]


# --- Acknowledge, call, resolve -----------------------------------------------------------------


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
        locked.save()
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


# --- SLA checks ---------------------------------------------------------------------------------


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
                transaction.on_commit(lambda pk=escalation.pk: _enqueue_page(pk))
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


def escalation_timings(escalation: Escalation) -> list[tuple[str, datetime | None]]:
    return [
        ("Flagged", escalation.case.created_at),
        ("Escalated", escalation.opened_at),
        ("Acknowledged", escalation.acknowledged_at),
        ("999 called", escalation.called_at),
        ("Referred", escalation.referred_at),
    ]
