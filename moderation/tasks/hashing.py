"""Hashing tasks (queue `hashing`): hash media in batches, sweep stuck media, rescan a list."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from core.enqueue import enqueue_on_commit
from moderation.services.hashing import (
    media_batches,
    media_claim_batch,
    media_hash_batch,
    media_sweep_stuck,
)
from moderation.services.matches import media_rescan_batch


# A batch holds at most one video (media_claim_batch, media_batches), which its decoder child
# gives up on after SAFEGUARD_VIDEO_TIMEOUT_SECONDS; the limits leave room for the images
# beside it. core.checks makes sure the sweeper and the broker wait longer than the hard limit.
@shared_task(
    name="moderation.hash_media_batch",
    acks_late=True,
    max_retries=5,
    soft_time_limit=settings.SAFEGUARD_VIDEO_TIMEOUT_SECONDS + 60,
    time_limit=settings.SAFEGUARD_VIDEO_TIMEOUT_SECONDS + 90,
)
def hash_media_batch_task(media_ids: list[int]) -> list[int]:
    claimed = media_claim_batch(media_ids=media_ids, batch_size=settings.SAFEGUARD_HASH_BATCH_SIZE)
    media_hash_batch(media_ids=claimed)
    return claimed


@shared_task(name="moderation.sweep_stuck_media")
def sweep_stuck_media_task() -> int:
    """Beat: re-enqueue media stuck pending or processing, in batches."""
    retry = media_sweep_stuck()
    for batch in media_batches(retry, batch_size=settings.SAFEGUARD_HASH_BATCH_SIZE):
        enqueue_on_commit(hash_media_batch_task, batch)
    return len(retry)


@shared_task(name="moderation.rescan_list", acks_late=True)
def rescan_list_task(hash_list_id: int, after_id: int = 0) -> None:
    cursor = media_rescan_batch(hash_list_id=hash_list_id, after_id=after_id)
    if cursor is not None:
        # Batch jobs re-enqueue themselves, so no task runs long and a restart resumes.
        enqueue_on_commit(rescan_list_task, hash_list_id, cursor)
