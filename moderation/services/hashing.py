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
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record, audit_record_many
from core.enqueue import enqueue_on_commit
from core.evidence_crypto import (
    Plaintext,
    encrypt_bytes,
    evidence_plaintext,
    evidence_staging_sweep,
)
from moderation.matching.banks import (
    Candidate,
    FrameInput,
    match_all,
    match_exact_many,
    match_frames,
)
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
from moderation.models import Case, HashList, Item, Media, MediaFrame
from moderation.rules.services import enqueue_rules
from moderation.services.matches import matches_record

logger = logging.getLogger(__name__)

# Photos whose decoders run in the limited child process, like videos.
ISOLATED_IMAGE_MIMES = frozenset({"image/heic", "image/avif"})

_FINAL = (Media.HashStatus.DONE, Media.HashStatus.FAILED)
_STAGING_MAX_AGE = 3600  # seconds: no upload or working copy lives this long


# The claim, as two set-based statements (one round trip each, whatever the batch size).
# "Not final" rather than "pending" for the named ids: a redelivered message means the
# previous attempt died (acks_late), so its "processing" mark is stale.
_CLAIM_NAMED = """
UPDATE moderation_media
   SET hash_status = 'processing', hash_started_at = %(now)s, hash_attempts = hash_attempts + 1
 WHERE id = ANY(%(ids)s) AND hash_status NOT IN ('done', 'failed')
RETURNING id
"""
# SKIP LOCKED: two workers sweeping up extras take different rows instead of queueing on
# each other; the outer hash_status test keeps the UPDATE conditional (the claim).
_CLAIM_EXTRA = """
UPDATE moderation_media
   SET hash_status = 'processing', hash_started_at = %(now)s, hash_attempts = hash_attempts + 1
 WHERE hash_status = 'pending' AND id IN (
        SELECT id FROM moderation_media
         WHERE hash_status = 'pending' AND kind <> 'video' AND NOT (id = ANY(%(ids)s))
         ORDER BY id
         LIMIT %(room)s
           FOR UPDATE SKIP LOCKED)
RETURNING id
"""


def media_claim_batch(*, media_ids: list[int], batch_size: int) -> list[int]:
    """Claim media for hashing with conditional UPDATEs; returns the ids this worker now owns.

    1. The ids named in the message are claimed unless already final.
    2. Up to `batch_size` other *pending* media are claimed too, so that under load one task
       hashes 8-16 files (Celery's per-task overhead amortised) and the tasks for those ids
       find nothing left to do. Only images join a batch: a video takes up to
       SAFEGUARD_VIDEO_TIMEOUT_SECONDS and is hashed in a task of its own (media_batches).
    The UPDATE ... WHERE status=… is the claim: two workers can't both flip the same row.
    """
    now = timezone.now()
    if connection.vendor != "postgresql":
        return _claim_batch_portable(media_ids=media_ids, batch_size=batch_size, now=now)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_NAMED, {"now": now, "ids": list(media_ids)})
        claimed = sorted(row[0] for row in cursor.fetchall())
        room = batch_size - len(claimed)
        if room > 0:
            cursor.execute(_CLAIM_EXTRA, {"now": now, "ids": claimed, "room": room})
            claimed += sorted(row[0] for row in cursor.fetchall())
    return claimed


def _claim_batch_portable(*, media_ids: list[int], batch_size: int, now: datetime) -> list[int]:
    """The same claim for the embedded default (SQLite: no ANY, no SKIP LOCKED).

    SQLite lets one writer in at a time, so reading the ids and flipping them inside one
    transaction is already exclusive; the status filter on the UPDATE keeps it conditional.
    """
    claim = {
        "hash_status": Media.HashStatus.PROCESSING,
        "hash_started_at": now,
        "hash_attempts": F("hash_attempts") + 1,
    }
    with transaction.atomic():
        named = Media.objects.filter(id__in=media_ids).exclude(hash_status__in=_FINAL)
        claimed = sorted(named.values_list("id", flat=True))
        Media.objects.filter(id__in=claimed).update(**claim)
        room = batch_size - len(claimed)
        if room > 0:
            extras = list(
                Media.objects.filter(hash_status=Media.HashStatus.PENDING)
                .exclude(kind=Item.Kind.VIDEO)
                .exclude(id__in=claimed)
                .order_by("id")
                .values_list("id", flat=True)[:room]
            )
            Media.objects.filter(id__in=extras, hash_status=Media.HashStatus.PENDING).update(
                **claim
            )
            claimed += extras
    return claimed


def _verify_custody(media: Media, plain: Plaintext) -> None:
    sha256 = plain.digests.sha256
    if sha256 != media.sha256:
        raise HashingError(
            f"chain of custody broken: stored bytes hash to {sha256}, intake recorded "
            f"{media.sha256}"
        )


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


def hash_file(path: Path, *, kind: str, digests: tuple[str, str, str] | None = None) -> FileHashes:
    """The hashes the worker stores for one file (see the module docstring). `digests` (SHA-256,
    MD5, SHA-1) are the file's, when the caller took them already (while decrypting it).

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
            hashes = compute_hashes(path, max_pixels=settings.SAFEGUARD_MAX_PIXELS, digests=digests)
        video = None
        # Pillow opens JPEG magic as JPEG or MPO, never animated: skip opening it again.
        if mime != "image/jpeg" and is_animated(path):
            video = hash_video_isolated(
                path, seconds_per_hash=interval, limits=video_limits(), animated=True
            )
        return FileHashes(hashes, video, size)
    sha256, md5, sha1 = digests or file_digests(path)
    digests_only = MediaHashes(sha256=sha256, md5=md5, sha1=sha1)
    if kind == "video":
        video = hash_video_isolated(path, seconds_per_hash=interval, limits=video_limits())
        return FileHashes(
            MediaHashes(sha256=sha256, md5=md5, sha1=sha1, width=video.width, height=video.height),
            video,
            size,
        )
    return FileHashes(digests_only, None, size)


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
            # Derived imagery is evidence too: encrypted at rest under a data key of its own.
            storage = row.thumbnail.storage
            name = row.thumbnail.field.generate_filename(row, "frame.jpg")
            row.thumbnail.name = storage.save(name, ContentFile(encrypt_bytes(jpeg, name=name)))
            written.append(row.thumbnail.name)
        rows.append(row)
    MediaFrame.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


# A hashed file waits at most this long for the rest of its batch before it is recorded.
_RECORD_WITHIN_SECONDS = 1.0


# The enabled hash lists a batch matches against are read again when older than this: one
# query per batch rather than per file, and never a staler view than a file's own wait above.
_LISTS_WITHIN_SECONDS = 1.0


class _EnabledLists:
    """The enabled hash lists, read at most _LISTS_WITHIN_SECONDS before each use."""

    def __init__(self) -> None:
        self._lists: list[HashList] = []
        self._read = -_LISTS_WITHIN_SECONDS - 1.0

    def get(self) -> list[HashList]:
        if time.monotonic() - self._read > _LISTS_WITHIN_SECONDS:
            self._lists = list(HashList.objects.filter(enabled=True))
            self._read = time.monotonic()
        return self._lists


@dataclass(frozen=True)
class _Hashed:
    """A file hashed and matched, waiting to be recorded with the rest of its batch."""

    media: Media
    hashes: MediaHashes
    video: VideoHashes | None
    candidates: list[Candidate]


def media_hash(*, media_id: int, actor: Actor = WORKER) -> Media:
    """Hash one claimed media file, record the hashes, match them, and update its case.

    Failures are recorded (hash_status=failed with the reason) and the item stays reviewable.
    """
    return media_hash_batch(media_ids=[media_id], actor=actor)[0]


def media_hash_batch(*, media_ids: list[int], actor: Actor = WORKER) -> list[Media]:
    """Hash claimed media files, then record all their results in one transaction.

    1. Each file is decrypted, custody-checked, hashed and matched against the perceptual
       lists on its own; a file that fails is recorded as failed at once (its item stays
       reviewable). The enabled lists are read once a second at most (_EnabledLists).
    2. The others are looked up in the exact lists together (one query), then recorded
       together (`_record_hashes`): one lock statement, one UPDATE of the media, one of the
       items, one INSERT of the audit events, one rules message.
    """
    media_rows = list(Media.objects.select_related("item").filter(pk__in=media_ids))
    order = {pk: n for n, pk in enumerate(media_ids)}
    media_rows.sort(key=lambda m: order[m.pk])
    done: dict[int, Media] = {}
    hashed: list[_Hashed] = []
    oldest = 0.0
    lists = _EnabledLists()

    def flush() -> None:
        if hashed:
            # The batch's digests against the exact lists: one query, not one per file.
            digests = [_hash_values(h.hashes) for h in hashed]
            for h, exact in zip(hashed, match_exact_many(digests, lists.get()), strict=True):
                h.candidates[:0] = exact  # first, as match_all returns them
        written: list[str] = []
        try:
            for media in _record_hashes(hashed, actor, written):
                done[media.pk] = media
        except BaseException:
            # Nothing half-written: thumbnails of a rolled-back transaction go with it.
            for name in written:
                MediaFrame.thumbnail.field.storage.delete(name)
            raise
        hashed.clear()

    for media in media_rows:
        outcome = _hash_one(media, actor, lists)
        if isinstance(outcome, _Hashed):
            if not hashed:
                oldest = time.monotonic()
            hashed.append(outcome)
        else:
            done[media.pk] = outcome
        if hashed and time.monotonic() - oldest > _RECORD_WITHIN_SECONDS:
            # Slow files (large PNGs, a loaded machine): record what is ready rather than
            # hold finished results back behind them.
            flush()
    flush()
    return [done[m.pk] for m in media_rows]


def _hash_one(media: Media, actor: Actor, lists: _EnabledLists) -> _Hashed | Media:
    """Hash and match one file; a failure is recorded here and returned as the Media."""
    if media.kind != "image":
        # Per file, not per batch: a batch that waits behind a long video must not look
        # stuck. (Images take milliseconds; the claim stamped their start.)
        Media.objects.filter(pk=media.pk).update(hash_started_at=timezone.now())
    try:
        # Decoders need a path: the evidence is decrypted into a private working copy (its
        # digests taken on the way, GCM authenticating every chunk), deleted after hashing.
        with evidence_plaintext(media.file.path) as plain:
            _verify_custody(media, plain)
            try:
                d = plain.digests
                result = hash_file(plain.path, kind=media.kind, digests=(d.sha256, d.md5, d.sha1))
            except (HashingError, VideoError, OSError, ValueError) as exc:
                # A file that can't be decoded still has its bytes' digests: match them
                # against the exact lists, or a broken or over-long file would dodge
                # known-hash matching.
                d = plain.digests
                digests = MediaHashes(sha256=d.sha256, md5=d.md5, sha1=d.sha1)
                return _record_failure(
                    media=media,
                    reason=str(exc)[:2000],
                    actor=actor,
                    digests=digests,
                    candidates=match_all(_hash_values(digests), lists=lists.get()),
                )
    except (HashingError, OSError, ValueError) as exc:
        # Custody broken, or the stored file can't be decrypted (EvidenceCryptoError).
        return _record_failure(media=media, reason=str(exc)[:2000], actor=actor)

    hashes, video = result.hashes, result.video
    candidates: list[Candidate] = match_all(
        _hash_values(hashes),
        pdq_quality=hashes.pdq_quality,
        pdq_dihedral=hashes.pdq_dihedral,
        lists=lists.get(),
        exact=False,  # the batch's digests are looked up together (media_hash_batch)
    )
    if video is not None:
        candidates += match_frames(_frame_inputs(video), lists=lists.get())
    return _Hashed(media, hashes, video, candidates)


_HASHED_FIELDS = [
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


def _record_hashes(hashed: list[_Hashed], actor: Actor, written: list[str]) -> list[Media]:
    """Record a batch's hashes in one transaction, each media's result exactly once.

    The media rows are locked in id order; one already DONE (a duplicate delivery finished
    first) is left as it is. Matches (rare) are recorded per media, as they lock its case.
    """
    if not hashed:
        return []
    with transaction.atomic():
        locked = {
            m.pk: m
            for m in Media.objects.select_for_update(of=("self",))
            .select_related("item")
            .filter(pk__in=[h.media.pk for h in hashed])
            .order_by("pk")
        }
        now = timezone.now()
        recorded: list[tuple[Media, _Hashed]] = []
        for h in hashed:
            row = locked[h.media.pk]
            if row.hash_status == Media.HashStatus.DONE:
                continue
            hashes, video = h.hashes, h.video
            row.md5, row.sha1 = hashes.md5, hashes.sha1
            row.pdq = hashes.pdq or ""
            row.pdq_quality = hashes.pdq_quality
            row.pdq_dihedral = list(hashes.pdq_dihedral)
            row.phash, row.dhash = hashes.phash or "", hashes.dhash or ""
            row.exif = hashes.exif
            if hashes.width:
                row.width, row.height = hashes.width, hashes.height
            if video is not None:
                row.duration, row.codec = video.duration, video.codec
                row.frame_rate, row.frame_count = video.frame_rate, video.frame_count
                if row.purged_at is None:  # purged while it was decoded: no new imagery
                    _store_frames(row, video, written)
            row.hash_status = Media.HashStatus.DONE
            row.hash_error = ""
            row.hashed_at = now
            recorded.append((row, h))
        if not recorded:
            return list(locked.values())
        _lock_matched_cases([row for row, h in recorded if h.candidates])
        _update_hashed([row for row, _ in recorded])
        Item.objects.filter(pk__in=[row.item_id for row, _ in recorded]).update(
            status=Item.Status.READY
        )
        events: list[tuple[str, Media, dict[str, object]]] = []
        for row, h in recorded:
            made = matches_record(media=row, candidates=h.candidates, actor=actor)
            events.append(
                (
                    "media.hashed",
                    row,
                    {
                        "item": row.item_id,
                        "sha256": row.sha256,
                        "md5": row.md5,
                        "sha1": row.sha1,
                        "pdq": row.pdq,
                        "pdq_quality": row.pdq_quality,
                        "phash": row.phash,
                        "dhash": row.dhash,
                        "frames": len(h.video.frames) if h.video is not None else None,
                        "duration": row.duration,
                        "matches": len(made),
                    },
                )
            )
        audit_record_many(actor=actor, events=events)
        case_ids = sorted({row.item.case_id for row, _ in recorded if row.item.case_id})
        if case_ids:
            enqueue_on_commit("moderation.apply_rules_batch", case_ids, "hashed")
    return list(locked.values())


def _lock_matched_cases(rows: list[Media]) -> None:
    """Lock the cases that matches_record will lock, all at once in id order, before the
    items are updated.

    Intake locks a subject's case and then inserts its items; a duplicate submission's INSERT
    waits on any uncommitted change to the item it collides with. Updating the item first
    and then waiting for its case (held by that intake) was a deadlock, seen when the same
    item was sent to two web processes while it was being hashed (tests/test_scale_out.py).
    Case before item, and cases in id order as intake takes them, removes the cycle.
    """
    case_ids = sorted({row.item.case_id for row in rows if row.item.case_id})
    if case_ids:
        list(
            Case.objects.select_for_update()
            .filter(pk__in=case_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


def _update_hashed(rows: list[Media]) -> None:
    """Write the rows' _HASHED_FIELDS in one UPDATE ... FROM (VALUES ...) on PostgreSQL.

    What bulk_update writes, without its CASE WHEN per field and row: that expression tree
    cost ~1.5 ms of Python per media (issue 19's worker profile, benchmarks/LOAD.md). Values
    go through each field's get_db_prep_save and are cast to its column type, as the ORM does.
    """
    if connection.vendor != "postgresql":
        Media.objects.bulk_update(rows, _HASHED_FIELDS)
        return
    fields = [Media._meta.get_field(name) for name in _HASHED_FIELDS]
    quote = connection.ops.quote_name
    row_sql = "(%s::bigint, " + ", ".join(f"%s::{f.db_type(connection)}" for f in fields) + ")"
    params: list[object] = []
    for row in rows:
        params.append(row.pk)
        params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    columns = [quote(f.column) for f in fields]
    # Identifiers from the model's meta, every value a parameter.
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    values = ", ".join([row_sql] * len(rows))
    sql = (
        f"UPDATE {quote(Media._meta.db_table)} AS m SET {assignments} "  # noqa: S608
        f"FROM (VALUES {values}) AS v(id, {', '.join(columns)}) WHERE m.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


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
        if candidates:
            _lock_matched_cases([locked])  # case before item, as in _record_hashes
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


def media_batches(
    media_ids: list[int], *, batch_size: int, videos: set[int] | None = None
) -> list[list[int]]:
    """Task-sized groups of media to hash: each video alone (it may take minutes), images
    batch_size at a time (Celery's per-task overhead amortised). `videos`: the ids among them
    that are videos, when the caller knows (else they are read)."""
    if videos is None:
        videos = set(
            Media.objects.filter(pk__in=media_ids, kind="video").values_list("pk", flat=True)
        )
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
    # Plaintext a crash left in staging (an upload mid-validation, a worker's working copy):
    # older than the stuck timeout (and an hour at least), nothing is still using it.
    evidence_staging_sweep(
        older_than_seconds=max(settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS, _STAGING_MAX_AGE)
    )
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
