"""Hashing: claim media for a worker, hash each file once (custody re-checked), record the
hashes and their matches; sweep media stuck pending or processing.

Images get digests, PDQ, pHash and dHash from one decode. Videos get digests and vPDQ frame
hashes, decoded in a child process with hard limits (moderation.media.video); animated GIF,
WebP and PNG get both: the first frame as an image, the animation as a short video. Frames are
matched against PDQ image lists and vPDQ video lists; a few keep a small JPEG for the contact
sheet, in private storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from moderation.matching.banks import Candidate, FrameInput, match_all, match_frames
from moderation.media.hashing import HashingError, MediaHashes, compute_hashes, file_digests
from moderation.media.validation import sniff_mime
from moderation.media.video import (
    VideoError,
    VideoHashes,
    VideoLimits,
    hash_image_isolated,
    hash_video_isolated,
    is_animated,
)
from moderation.models import Item, Media, MediaFrame
from moderation.rules.services import enqueue_rules
from moderation.services.matches import matches_record

logger = logging.getLogger(__name__)

# Photos whose decoders run in the limited child process, like videos.
ISOLATED_IMAGE_MIMES = frozenset({"image/heic", "image/avif"})

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
        # Only images join a batch: a video takes up to SAFEGUARD_VIDEO_TIMEOUT_SECONDS and
        # is hashed in a task of its own (see media_batches).
        extra = list(
            Media.objects.filter(hash_status=Media.HashStatus.PENDING)
            .exclude(kind="video")
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


@dataclass(frozen=True)
class FileHashes:
    """Everything the worker stores for one file."""

    hashes: MediaHashes
    video: VideoHashes | None = None
    size: int = 0


def video_limits() -> VideoLimits:
    return VideoLimits(
        max_seconds=settings.SAFEGUARD_VIDEO_MAX_SECONDS,
        max_frames=settings.SAFEGUARD_VIDEO_MAX_FRAMES,
        max_pixels=settings.SAFEGUARD_VIDEO_MAX_PIXELS,
        memory_bytes=settings.SAFEGUARD_VIDEO_MEMORY_MB * 1024 * 1024,
        cpu_seconds=settings.SAFEGUARD_VIDEO_TIMEOUT_SECONDS,
        timeout_seconds=settings.SAFEGUARD_VIDEO_TIMEOUT_SECONDS,
        thumbnails=settings.SAFEGUARD_VIDEO_THUMBNAILS,
    )


def hash_file(path: Path, *, kind: str) -> FileHashes:
    """The hashes the worker stores for one file (see the module docstring).

    Raises HashingError (images) or VideoError (videos, animations) with a storable reason.
    """
    interval = settings.SAFEGUARD_VIDEO_HASH_INTERVAL_MS / 1000
    size = path.stat().st_size
    if kind == "image":
        with open(path, "rb") as handle:
            mime = sniff_mime(handle.read(64))
        if mime in ISOLATED_IMAGE_MIMES:
            # HEVC and AV1 picture decoders: as large an attack surface as a video's.
            hashes = hash_image_isolated(
                path, max_pixels=settings.SAFEGUARD_MAX_PIXELS, limits=video_limits()
            )
        else:
            hashes = compute_hashes(path, max_pixels=settings.SAFEGUARD_MAX_PIXELS)
        video = None
        if is_animated(path):
            video = hash_video_isolated(
                path, seconds_per_hash=interval, limits=video_limits(), animated=True
            )
        return FileHashes(hashes, video, size)
    sha256, md5, sha1 = file_digests(path)
    digests = MediaHashes(sha256=sha256, md5=md5, sha1=sha1)
    if kind == "video":
        video = hash_video_isolated(path, seconds_per_hash=interval, limits=video_limits())
        return FileHashes(
            MediaHashes(sha256=sha256, md5=md5, sha1=sha1, width=video.width, height=video.height),
            video,
            size,
        )
    return FileHashes(digests, None, size)


def _frame_inputs(video: VideoHashes) -> list[FrameInput]:
    return [FrameInput(f.timestamp, f.quality, f.pdq) for f in video.frames]


def _store_frames(media: Media, video: VideoHashes, written: list[str]) -> int:
    """MediaFrame rows for the hashed frames; the contact-sheet ones with their thumbnail,
    written to private storage. The names written are appended to ``written``, so that the
    caller can remove them if its transaction rolls back."""
    rows = []
    for frame in video.frames:
        row = MediaFrame(
            media=media,
            frame=frame.frame,
            timestamp=frame.timestamp,
            quality=frame.quality,
            pdq=frame.pdq,
        )
        jpeg = video.thumbnails.get(frame.frame)
        if jpeg is not None:
            row.thumbnail.save("frame.jpg", ContentFile(jpeg), save=False)
            written.append(row.thumbnail.name)
        rows.append(row)
    MediaFrame.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def media_hash(*, media_id: int, actor: Actor = WORKER) -> Media:
    """Hash one claimed media file, record the hashes, match them, and update its case.

    Failures are recorded (hash_status=failed with the reason) and the item stays reviewable.
    """
    media = Media.objects.select_related("item").get(pk=media_id)
    # Per file, not per batch: a batch that waits behind a long video must not look stuck.
    Media.objects.filter(pk=media.pk).update(hash_started_at=timezone.now())
    try:
        path = _verify_custody(media)
    except (HashingError, OSError, ValueError) as exc:
        return _record_failure(media=media, reason=str(exc)[:2000], actor=actor)
    try:
        result = hash_file(path, kind=media.kind)
    except (HashingError, VideoError, OSError, ValueError) as exc:
        # A file that can't be decoded still has its bytes' digests: match them against the
        # exact lists, or a broken or over-long file would dodge known-hash matching.
        sha256, md5, sha1 = file_digests(path)
        digests = MediaHashes(sha256=sha256, md5=md5, sha1=sha1)
        return _record_failure(
            media=media,
            reason=str(exc)[:2000],
            actor=actor,
            digests=digests,
            candidates=match_all(_hash_values(digests)),
        )

    hashes, video = result.hashes, result.video
    candidates: list[Candidate] = match_all(
        _hash_values(hashes), pdq_quality=hashes.pdq_quality, pdq_dihedral=hashes.pdq_dihedral
    )
    if video is not None:
        candidates += match_frames(_frame_inputs(video))
    written: list[str] = []
    try:
        return _record_hashes(media, hashes, video, candidates, actor, written)
    except BaseException:
        # Nothing half-written: thumbnails of a rolled-back transaction go with it.
        for name in written:
            MediaFrame.thumbnail.field.storage.delete(name)
        raise


def _record_hashes(
    media: Media,
    hashes: MediaHashes,
    video: VideoHashes | None,
    candidates: list[Candidate],
    actor: Actor,
    written: list[str],
) -> Media:
    with transaction.atomic():
        locked = Media.objects.select_for_update().get(pk=media.pk)
        if locked.hash_status == Media.HashStatus.DONE:
            return locked  # a duplicate delivery finished first: nothing to do
        locked.md5, locked.sha1 = hashes.md5, hashes.sha1
        locked.pdq = hashes.pdq or ""
        locked.pdq_quality = hashes.pdq_quality
        locked.pdq_dihedral = list(hashes.pdq_dihedral)
        locked.phash, locked.dhash = hashes.phash or "", hashes.dhash or ""
        locked.exif = hashes.exif
        if hashes.width:
            locked.width, locked.height = hashes.width, hashes.height
        if video is not None:
            locked.duration, locked.codec = video.duration, video.codec
            locked.frame_rate, locked.frame_count = video.frame_rate, video.frame_count
            if locked.purged_at is None:  # purged while it was decoded: no new imagery
                _store_frames(locked, video, written)
        locked.hash_status = Media.HashStatus.DONE
        locked.hash_error = ""
        locked.hashed_at = timezone.now()
        locked.save(
            update_fields=[
                "md5",
                "sha1",
                "pdq",
                "pdq_quality",
                "pdq_dihedral",
                "phash",
                "dhash",
                "exif",
                "width",
                "height",
                "duration",
                "codec",
                "frame_rate",
                "frame_count",
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
                "frames": len(video.frames) if video is not None else None,
                "duration": locked.duration,
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


def _record_failure(
    *,
    media: Media,
    reason: str,
    actor: Actor,
    digests: MediaHashes | None = None,
    candidates: list[Candidate] | None = None,
) -> Media:
    """Record that hashing failed (the item stays stored and reviewable), with the digests
    and exact matches when the bytes could still be read. Never overwrites a finished result
    (a duplicate delivery may have hashed the file meanwhile)."""
    with transaction.atomic():
        locked = Media.objects.select_for_update().get(pk=media.pk)
        if locked.hash_status == Media.HashStatus.DONE:
            return locked
        locked.hash_status = Media.HashStatus.FAILED
        locked.hash_error = reason
        locked.hashed_at = timezone.now()
        fields = ["hash_status", "hash_error", "hashed_at"]
        if digests is not None:
            locked.md5, locked.sha1 = digests.md5, digests.sha1
            fields += ["md5", "sha1"]
        locked.save(update_fields=fields)
        Item.objects.filter(pk=media.item_id).update(status=Item.Status.FAILED)
        made = matches_record(media=locked, candidates=candidates or [], actor=actor)
        if made:
            enqueue_rules(media.item.case_id, "hashed")
        audit_record(
            actor=actor,
            verb="media.hash_failed",
            obj=media,
            data={"item": media.item_id, "reason": reason, "matches": len(made)},
        )
    logger.warning("Hashing media %s failed: %s", media.pk, reason)
    media.refresh_from_db()
    return media


def media_batches(media_ids: list[int], *, batch_size: int) -> list[list[int]]:
    """Task-sized groups of media to hash: each video alone (it may take minutes), images
    batch_size at a time (Celery's per-task overhead amortised)."""
    videos = set(Media.objects.filter(pk__in=media_ids, kind="video").values_list("pk", flat=True))
    images = [pk for pk in media_ids if pk not in videos]
    batches = [[pk] for pk in media_ids if pk in videos]
    batches += [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    return batches


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
