"""Paging: who is on call, and paging them about an escalation (email and webhook) until one
acknowledges, moving up the on-call tiers. Each page is sent at most once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.audit import WORKER, audit_record
from core.enqueue import enqueue_on_commit
from moderation.models import Escalation, Notification, OnCallOverride, OnCallShift
from moderation.services.notifications import notification_send


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


def escalation_enqueue_page(escalation: Escalation) -> None:
    """Page for the escalation's next page, after commit. The page number travels with the
    task, so a redelivered or repeated message for the same page sends nothing new."""
    enqueue_on_commit("moderation.page_escalation", escalation.pk, escalation.page_count + 1)


def escalation_page(*, escalation_id: int, page: int | None = None) -> int:
    """Send page number `page` (default: the next) of an open escalation to the on-call leads
    of its current level, by email and webhook. Returns the notifications sent now.

    1. Nothing for an escalation acknowledged or resolved meanwhile, or for a page already
       counted (a redelivered task).
    2. Each channel goes through `notification_send` with the key
       `page:<escalation>:<page>:<channel>`: recorded first, sent at most once.
    3. The page is counted with a conditional UPDATE (page_count still page - 1), audited.
    Network I/O happens outside any transaction.
    """
    escalation = (
        Escalation.objects.select_related("case")
        .filter(pk=escalation_id, status=Escalation.Status.OPEN)
        .first()
    )
    if escalation is None:
        return 0  # acknowledged or resolved meanwhile: stop paging
    page = page or escalation.page_count + 1
    if page <= escalation.page_count:
        return 0  # this page went out and was counted: a redelivered task
    subject, body, payload = _page_text(escalation)
    recipients = [u.email for u in oncall_users(level=escalation.level) if u.email]
    sends: list[tuple[str, list[str]]] = []
    if recipients:
        sends.append((Notification.Channel.EMAIL, recipients))
    if settings.SAFEGUARD_PAGING_WEBHOOK_URL:
        sends.append((Notification.Channel.WEBHOOK, [settings.SAFEGUARD_PAGING_WEBHOOK_URL]))
    sent_now = 0
    delivered: list[str] = []
    for channel, to in sends:
        note, sent = notification_send(
            key=f"page:{escalation.pk}:{page}:{channel}",
            channel=channel,
            to=to,
            subject=subject,
            body=body,
            payload=payload,
            escalation=escalation,
            context={"escalation": escalation.pk, "page": page},
        )
        sent_now += int(sent)
        if note.status == Notification.Status.SENT:
            delivered.append(channel)
    with transaction.atomic():
        if Escalation.objects.filter(pk=escalation.pk, page_count=page - 1).update(
            page_count=page, last_paged_at=timezone.now()
        ):
            audit_record(
                actor=WORKER,
                verb="escalation.paged",
                obj=escalation,
                data={
                    "level": escalation.level,
                    "page": page,
                    "recipients": len(recipients),
                    "channels": delivered,
                },
            )
    return sent_now


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


def escalations_repage(*, now: datetime | None = None) -> int:
    """Beat: enqueue the next page of every escalation due for one; returns how many."""
    due = Escalation.objects.filter(pk__in=escalations_due_for_repage(now=now))
    for escalation in due:
        escalation_enqueue_page(escalation)
    return len(due)
