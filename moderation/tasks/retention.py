"""Retention task (beat): purge evidence past retention, except cases under a legal hold."""

from __future__ import annotations

from celery import shared_task

from moderation.services.retention import retention_purge


@shared_task(name="moderation.retention_purge")
def retention_purge_task() -> dict[str, int]:
    return retention_purge()
