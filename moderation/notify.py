"""Rule notifications: identifiers and links only, never content or media."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from core import outbound
from core.audit import WORKER, audit_record

from .models import Case, EscalationRule, Notification


def rule_notify(*, case_id: int, rule_id: int, channel: str, to: str) -> Notification | None:
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
    status, error = "sent", ""
    try:
        if channel == "email":
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
        else:
            outbound.send(to, payload, {})
    except (outbound.OutboundError, OSError) as exc:
        status, error = "failed", str(exc)[:2000]
    with transaction.atomic():
        note = Notification.objects.create(
            channel=channel,
            recipient=to,
            subject=subject,
            body=body if channel == "email" else json.dumps(payload),
            status=status,
            error=error,
        )
        audit_record(
            actor=WORKER,
            verb="notification.sent" if status == "sent" else "notification.failed",
            obj=note,
            data={"case": case.pk, "rule": rule.name},
        )
    return note
