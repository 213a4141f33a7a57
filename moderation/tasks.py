"""Thin Celery tasks: take ids, treat DoesNotExist as done, call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


@shared_task(name="moderation.hash_media_batch", acks_late=True, max_retries=5)
def hash_media_batch(media_ids: list[int]) -> list[int]:
    from .pipeline import media_claim_batch, media_hash

    claimed = media_claim_batch(media_ids=media_ids, batch_size=settings.SAFEGUARD_HASH_BATCH_SIZE)
    for media_id in claimed:
        media_hash(media_id=media_id)
    return claimed


@shared_task(name="moderation.sweep_stuck_media")
def sweep_stuck_media() -> int:
    from .pipeline import media_sweep_stuck

    retry = media_sweep_stuck()
    for start in range(0, len(retry), settings.SAFEGUARD_HASH_BATCH_SIZE):
        hash_media_batch.delay(retry[start : start + settings.SAFEGUARD_HASH_BATCH_SIZE])
    return len(retry)


@shared_task(name="moderation.rescan_list", acks_late=True)
def rescan_list(hash_list_id: int, after_id: int = 0) -> None:
    from .pipeline import media_rescan_batch

    cursor = media_rescan_batch(hash_list_id=hash_list_id, after_id=after_id)
    if cursor is not None:
        # Batch jobs re-enqueue themselves, so no task runs long and a restart resumes.
        rescan_list.delay(hash_list_id, cursor)


@shared_task(name="moderation.import_hash_list", acks_late=True)
def import_hash_list(import_id: int) -> None:
    from .hashlists import hash_import_run

    hash_import_run(import_id=import_id)


@shared_task(name="moderation.expire_leases")
def expire_leases() -> int:
    from .queue import case_expire_leases

    return case_expire_leases()


@shared_task(name="moderation.vacuum_queue", ignore_result=True, expires=10)
def vacuum_queue() -> bool:
    from .queue import queue_vacuum

    return queue_vacuum()


def enqueue_rescan(hash_list_id: int) -> None:
    transaction.on_commit(lambda: rescan_list.delay(hash_list_id, 0))


def enqueue_import(import_id: int) -> None:
    transaction.on_commit(lambda: import_hash_list.delay(import_id))


@shared_task(name="moderation.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> bool | None:
    from .webhooks import webhook_attempt

    return webhook_attempt(delivery_id=delivery_id)


@shared_task(name="moderation.retry_webhooks")
def retry_webhooks() -> int:
    """Beat: re-attempt failed deliveries when their backoff has passed. Retries live in the
    database (next_attempt_at), not in broker countdowns, so they survive a broker restart."""
    from .webhooks import webhook_due_ids

    due = webhook_due_ids()
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)


@shared_task(name="moderation.apply_rules", acks_late=True)
def apply_rules(case_id: int, event: str) -> list[str]:
    from .rules import rules_apply

    return rules_apply(case_id=case_id, event=event)


@shared_task(name="moderation.page_escalation", acks_late=True)
def page_escalation(escalation_id: int) -> int:
    from .escalations import escalation_page

    return escalation_page(escalation_id=escalation_id)


@shared_task(name="moderation.repage_escalations")
def repage_escalations() -> int:
    """Beat: keep paging unacknowledged escalations, moving up the on-call tiers."""
    from .escalations import escalations_due_for_repage

    due = escalations_due_for_repage()
    for escalation_id in due:
        page_escalation.delay(escalation_id)
    return len(due)


@shared_task(name="moderation.sla_check")
def sla_check() -> dict[str, int]:
    from .escalations import sla_check as check

    return check()


@shared_task(name="moderation.send_rule_notification", acks_late=True)
def send_rule_notification(case_id: int, rule_id: int, channel: str, to: str) -> None:
    from .notify import rule_notify

    rule_notify(case_id=case_id, rule_id=rule_id, channel=channel, to=to)


@shared_task(name="moderation.retention_purge")
def retention_purge() -> dict[str, int]:
    from .retention import retention_purge as purge

    return purge()
