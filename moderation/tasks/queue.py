"""Queue housekeeping (beat): expire leases, vacuum the claim queue."""

from __future__ import annotations

from celery import shared_task

from moderation.services.queue import case_expire_leases, queue_vacuum


@shared_task(name="moderation.expire_leases")
def expire_leases_task() -> int:
    return case_expire_leases()


@shared_task(name="moderation.vacuum_queue", ignore_result=True, expires=10)
def vacuum_queue_task() -> bool:
    return queue_vacuum()
