"""Signed decision webhooks to the platform: enqueue after commit, retry with backoff, log."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import outbound
from core.audit import WORKER, audit_record
from core.enqueue import enqueue_on_commit
from moderation.models import Decision, WebhookDelivery


def sign(body: dict[str, Any], *, secret: str, timestamp: int) -> str:
    """HMAC-SHA256 over `timestamp.body` (canonical JSON), hex. The platform recomputes it."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    message = f"{timestamp}.{canonical}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def decision_payload(decision: Decision) -> dict[str, Any]:
    """Identifiers and the outcome only — never media, never reviewer notes about content."""
    items = decision.case.items.values_list("source", "external_id")
    return {
        "event": "decision.recorded",
        "decision_id": decision.pk,
        "case_id": decision.case_id,
        "outcome": decision.outcome,
        "categories": sorted(c.code for c in decision.categories.all()),
        "principles": decision.principles,
        "items": [{"source": s, "external_id": e} for s, e in items],
        "decided_at": decision.created_at.isoformat(),
    }


def webhook_enqueue_decision(*, decision: Decision) -> WebhookDelivery | None:
    """Create the delivery row in the decision's transaction; send after commit."""
    url = settings.SAFEGUARD_DECISION_WEBHOOK_URL
    if not url:
        return None
    delivery = WebhookDelivery.objects.create(
        decision=decision, url=url, payload=decision_payload(decision)
    )

    # Broker down: the delivery row is committed pending; beat's retry_webhooks sends it.
    enqueue_on_commit("moderation.deliver_webhook", delivery.pk)
    return delivery


def backoff(attempts: int) -> timedelta:
    """Exponential backoff after the n-th failed attempt: 30 s, 1 min, 2 min … capped at 1 h."""
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def webhook_due_ids(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending deliveries whose next attempt is due (beat enqueues them)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def webhook_attempt(*, delivery_id: int) -> bool | None:
    """Try one delivery. True delivered, False retry later (beat retries when due), None gave
    up or nothing to do.

    No network I/O happens inside a transaction: the row is read, the request is made, then
    the outcome is written.
    """
    delivery = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING
    ).first()
    if delivery is None:
        return None
    timestamp = int(time.time())
    signature = sign(
        delivery.payload, secret=settings.SAFEGUARD_WEBHOOK_SECRET, timestamp=timestamp
    )
    headers = {
        "X-Safeguard-Timestamp": str(timestamp),
        "X-Safeguard-Signature": f"sha256={signature}",
        "X-Safeguard-Delivery": str(delivery.pk),
    }
    attempts = delivery.attempts + 1
    # Claim this attempt: push next_attempt_at out first, so the sweeper doesn't start a second
    # attempt of the same delivery while this request is in flight.
    if not WebhookDelivery.objects.filter(
        pk=delivery.pk, attempts=delivery.attempts, status=WebhookDelivery.Status.PENDING
    ).update(attempts=attempts, next_attempt_at=timezone.now() + timedelta(minutes=5)):
        return None
    try:
        response = outbound.send(delivery.url, delivery.payload, headers)
    except outbound.OutboundError as exc:
        give_up = not exc.retryable or attempts >= settings.SAFEGUARD_WEBHOOK_MAX_ATTEMPTS
        with transaction.atomic():
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                last_status_code=exc.status,
                last_error=str(exc)[:2000],
                next_attempt_at=timezone.now() + backoff(attempts),
                status=WebhookDelivery.Status.FAILED if give_up else WebhookDelivery.Status.PENDING,
            )
            audit_record(
                actor=WORKER,
                verb="webhook.failed" if give_up else "webhook.retrying",
                obj=delivery,
                data={"attempt": attempts, "error": str(exc)[:500]},
            )
        return None if give_up else False
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            last_status_code=response.status,
            last_error="",
            status=WebhookDelivery.Status.DELIVERED,
            delivered_at=timezone.now(),
        )
        audit_record(
            actor=WORKER,
            verb="webhook.delivered",
            obj=delivery,
            data={"attempt": attempts, "status": response.status},
        )
    return True
