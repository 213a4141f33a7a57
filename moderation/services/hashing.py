"""Hashing: claim media for a worker, hash each file once (custody re-checked), record the
hashes and their matches; sweep media stuck pending or processing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from moderation.matching.banks import match_all
from moderation.media.hashing import HashingError, MediaHashes, compute_hashes, file_digests
from moderation.models import Item, Media
from moderation.rules.services import enqueue_rules
from moderation.services.matches import matches_record

logger = logging.getLogger(__name__)

_FINAL = (Media.HashStatus.DONE, Media.HashStatus.FAILED)


def media_claim_batch(*, media_ids: list[int], batch_size: int) -> list[int]:
    """Claim media for hashing with conditional UPDATEs; returns the ids this worker now owns.

    1. The ids named in the message are claimed unless already final: a redelivered message
       means the previous attempt died (acks_late), so its "processing" mark is stale.
    2. Up to `batch_size` other *pending* media are claimed too, so that under load one task
       hashes 8-16 files (Celery's per-task overhead amortised) and the tasks for those ids
       find nothing left to do.
    The UPDATE ... WHERE status=… is the claim: two workers can't both flip the same row.
    """
    now = timezone.now()
    named = list(
        Media.objects.filter(pk__in=media_ids)
        .exclude(hash_status__in=_FINAL)
        .values_list("pk", flat=True)
    )
    claimed: list[int] = []
    for pk in named:
        updated = (
            Media.objects.filter(pk=pk)
            .exclude(hash_status__in=_FINAL)
            .update(
                hash_status=Media.HashStatus.PROCESSING,
                hash_started_at=now,
                hash_attempts=F("hash_attempts") + 1,
            )
        )
        if updated:
            claimed.append(pk)
    room = batch_size - len(claimed)
    if room > 0:
        extra = list(
            Media.objects.filter(hash_status=Media.HashStatus.PENDING)
            .exclude(pk__in=claimed)
            .order_by("id")
            .values_list("pk", flat=True)[:room]
        )
        for pk in extra:
            if Media.objects.filter(pk=pk, hash_status=Media.HashStatus.PENDING).update(
                hash_status=Media.HashStatus.PROCESSING,
                hash_started_at=now,
                hash_attempts=F("hash_attempts") + 1,
            ):
                claimed.append(pk)
    return claimed


def _verify_custody(media: Media) -> Path:
    path = Path(media.file.path)
    sha256, _, _ = file_digests(path)
    if sha256 != media.sha256:
        raise HashingError(
            f"chain of custody broken: stored bytes hash to {sha256}, intake recorded "
            f"{media.sha256}"
        )
    return path


def hash_file(path: Path, *, kind: str) -> MediaHashes:
    """The hashes the worker stores for one file: all of them for images, digests otherwise."""
    if kind == "image":
        return compute_hashes(path, max_pixels=settings.SAFEGUARD_MAX_PIXELS)
    sha256, md5, sha1 = file_digests(path)
    return MediaHashes(
        sha256=sha256,
        md5=md5,
        sha1=sha1,
        pdq=None,
        pdq_quality=None,
        phash=None,
        dhash=None,
        width=None,
        height=None,
        exif={},
    )


def media_hash(*, media_id: int, actor: Actor = WORKER) -> Media:
    """Hash one claimed media file, record the hashes, match them, and update its case.

    Failures are recorded (hash_status=failed with the reason) and the item stays reviewable.
    """
    media = Media.objects.select_related("item").get(pk=media_id)
    try:
        path = _verify_custody(media)
        hashes = hash_file(path, kind=media.kind)
    except (HashingError, OSError, ValueError) as exc:
        return _record_failure(media=media, reason=str(exc)[:2000], actor=actor)

    candidates = match_all(_hash_values(hashes))
    with transaction.atomic():
        locked = Media.objects.select_for_update().get(pk=media.pk)
        if locked.hash_status == Media.HashStatus.DONE:
            return locked  # a duplicate delivery finished first: nothing to do
        locked.md5, locked.sha1 = hashes.md5, hashes.sha1
        locked.pdq = hashes.pdq or ""
        locked.pdq_quality = hashes.pdq_quality
        locked.phash, locked.dhash = hashes.phash or "", hashes.dhash or ""
        locked.exif = hashes.exif
        if hashes.width:
            locked.width, locked.height = hashes.width, hashes.height
        locked.hash_status = Media.HashStatus.DONE
        locked.hash_error = ""
        locked.hashed_at = timezone.now()
        locked.save(
            update_fields=[
                "md5",
                "sha1",
                "pdq",
                "pdq_quality",
                "phash",
                "dhash",
                "exif",
                "width",
                "height",
                "hash_status",
                "hash_error",
                "hashed_at",
            ]
        )
        Item.objects.filter(pk=locked.item_id).update(status=Item.Status.READY)
        made = matches_record(media=locked, candidates=candidates, actor=actor)
        enqueue_rules(locked.item.case_id, "hashed")
        audit_record(
            actor=actor,
            verb="media.hashed",
            obj=locked,
            data={
                "item": locked.item_id,
                "sha256": locked.sha256,
                "md5": locked.md5,
                "sha1": locked.sha1,
                "pdq": locked.pdq,
                "pdq_quality": locked.pdq_quality,
                "phash": locked.phash,
                "dhash": locked.dhash,
                "matches": len(made),
            },
        )
    return locked


def _hash_values(hashes: MediaHashes) -> dict[str, str]:
    return {
        "sha256": hashes.sha256,
        "md5": hashes.md5,
        "sha1": hashes.sha1,
        "pdq": hashes.pdq or "",
        "phash": hashes.phash or "",
        "dhash": hashes.dhash or "",
    }


def _record_failure(*, media: Media, reason: str, actor: Actor) -> Media:
    with transaction.atomic():
        Media.objects.filter(pk=media.pk).update(
            hash_status=Media.HashStatus.FAILED, hash_error=reason, hashed_at=timezone.now()
        )
        Item.objects.filter(pk=media.item_id).update(status=Item.Status.FAILED)
        audit_record(
            actor=actor,
            verb="media.hash_failed",
            obj=media,
            data={"item": media.item_id, "reason": reason},
        )
    logger.warning("Hashing media %s failed: %s", media.pk, reason)
    media.refresh_from_db()
    return media


def media_sweep_stuck(*, now: datetime | None = None) -> list[int]:
    """Find media stuck pending or processing past the timeout; return ids to re-enqueue.

    Media past the attempt limit are failed with a reason instead (and stay reviewable).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS)
    stuck = Media.objects.filter(
        Q(hash_status=Media.HashStatus.PENDING, created_at__lt=cutoff)
        | Q(hash_status=Media.HashStatus.PROCESSING, hash_started_at__lt=cutoff)
    )
    retry: list[int] = []
    for media in stuck.only("pk", "item_id", "hash_attempts")[:1000]:
        if media.hash_attempts >= settings.SAFEGUARD_HASH_MAX_ATTEMPTS:
            _record_failure(
                media=media, actor=WORKER, reason=f"gave up after {media.hash_attempts} attempts"
            )
            continue
        # Back to pending so the claim's conditional UPDATE accepts it again.
        Media.objects.filter(pk=media.pk, hash_status=Media.HashStatus.PROCESSING).update(
            hash_status=Media.HashStatus.PENDING
        )
        retry.append(media.pk)
    return retry
