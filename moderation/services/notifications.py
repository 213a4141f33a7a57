"""Notifications: pages and rule messages by email or webhook — identifiers and links only,
never content or media. Each is recorded before it is sent, so a redelivered task never sends
twice and nothing is sent unrecorded."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import outbound
from core.audit import WORKER, audit_record
from moderation.models import Case, Escalation, EscalationRule, Notification

logger = logging.getLogger(__name__)


def notification_send(
    *,
    key: str,
    channel: str,
    to: list[str],
    subject: str,
    body: str,
    payload: dict[str, Any] | None = None,
    escalation: Escalation | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[Notification, bool]:
    """Send one notification at most once per `key`; returns (notification, sent_now).

    1. Record: insert the row (pending) with its key, audited, and commit it before any I/O.
       If a row with this key exists, this send already happened — or is under way, or died
       mid-send, when whether it went out is unknown — and it is not sent again.
    2. Send, outside any transaction: email to `to`, or `payload` as JSON to the webhook
       `to[0]` through the one outbound chokepoint.
    3. Mark it sent or failed (only from pending), audited.
    """
    recipient = ", ".join(to)
    stored_body = json.dumps(payload) if channel == Notification.Channel.WEBHOOK else body
    context = context or {}
    try:
        with transaction.atomic():
            note = Notification.objects.create(
                key=key,
                escalation=escalation,
                channel=channel,
                recipient=recipient[:500],
                subject=subject[:200],
                body=stored_body,
            )
            audit_record(
                actor=WORKER,
                verb="notification.recorded",
                obj=note,
                data={"key": key, "channel": channel, **context},
            )
    except IntegrityError:
        # The key is taken: a redelivered task, or a racing one, already has this send.
        return Notification.objects.get(key=key), False
    status, error = Notification.Status.SENT, ""
    try:
        if channel == Notification.Channel.EMAIL:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
        else:
            outbound.send(to[0], payload or {}, {})
    except Exception as exc:  # noqa: BLE001 — every outcome is recorded; other channels go on
        status, error = Notification.Status.FAILED, str(exc)[:2000]
        logger.warning("Notification %s (%s) failed: %s", note.pk, channel, error)
    with transaction.atomic():
        Notification.objects.filter(pk=note.pk, status=Notification.Status.PENDING).update(
            status=status,
            error=error,
            sent_at=timezone.now() if status == Notification.Status.SENT else None,
        )
        audit_record(
            actor=WORKER,
            verb="notification.sent"
            if status == Notification.Status.SENT
            else "notification.failed",
            obj=note,
            data={"key": key, **context},
        )
    note.refresh_from_db()
    return note, status == Notification.Status.SENT


def rule_notify(*, case_id: int, rule_id: int, channel: str, to: str) -> Notification | None:
    """A rule's `notify` action: tell a team or system that the rule matched a case. Sent once
    per case, rule version, channel and recipient."""
    case = Case.objects.filter(pk=case_id).first()
    rule = EscalationRule.objects.filter(pk=rule_id).first()
    if case is None or rule is None:
        return None
    link = f"{settings.SITE_URL}/cases/{case.pk}/"
    subject = f"[Safeguard] Rule {rule.name!r} matched case {case.reference}"
    body = f"Rule {rule.name!r} matched case {case.reference} (P{case.priority}).\n{link}\n"
    payload = {
        "event": "rule.matched",
        "rule": rule.name,
        "case_id": case.pk,
        "case_reference": case.reference,
        "priority": case.priority,
        "url": link,
    }
    # The recipient can be a long URL: the key carries its digest, not the address.
    digest = hashlib.sha256(to.encode()).hexdigest()[:16]
    note, _ = notification_send(
        key=f"rule:{rule.pk}:{rule.version}:case:{case.pk}:{channel}:{digest}",
        channel=channel,
        to=[to],
        subject=subject,
        body=body,
        payload=payload,
        context={"case": case.pk, "rule": rule.name},
    )
    return note
