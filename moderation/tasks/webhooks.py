"""Decision webhook tasks: deliver one, and retry the due ones (beat)."""

from __future__ import annotations

from celery import shared_task

from core.enqueue import enqueue_on_commit
from moderation.services.webhooks import webhook_attempt, webhook_due_ids


@shared_task(name="moderation.deliver_webhook", acks_late=True)
def deliver_webhook_task(delivery_id: int) -> bool | None:
    return webhook_attempt(delivery_id=delivery_id)


@shared_task(name="moderation.retry_webhooks")
def retry_webhooks_task() -> int:
    """Beat: re-attempt failed deliveries when their backoff has passed. Retries live in the
    database (next_attempt_at), not in broker countdowns, so they survive a broker restart."""
    due = webhook_due_ids()
    for delivery_id in due:
        enqueue_on_commit(deliver_webhook_task, delivery_id)
    return len(due)
