"""Worker workflows: hash media, match them against hash lists, record matches; sweep stuck work.

Tasks in tasks.py are thin wrappers around these functions.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from principles.models import HarmCategory

from .matching.banks import Candidate, match_all
from .media.hashing import HashingError, MediaHashes, compute_hashes, file_digests
from .models import Case, Flag, HashList, Item, KnownHash, Match, Media
from .rules import enqueue_rules
from .services import case_apply_severity

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
        locked.save()
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


def matches_record(*, media: Media, candidates: list[Candidate], actor: Actor) -> list[Match]:
    """Store matches (once per media x known hash), flag the item, and raise its case.

    A match to an enabled list adds a hash-match Flag and puts the case in the known-material
    category and priority (DESIGN.md §6), unless the case is already more urgent.
    """
    if not candidates:
        return []
    lists = {
        hl.pk: hl for hl in HashList.objects.filter(pk__in={c.hash_list_id for c in candidates})
    }
    known = KnownHash.objects.in_bulk([c.known_hash_id for c in candidates])
    category = HarmCategory.objects.filter(code="known_csam").first()
    # Lock order: case row first, audit-chain lock last — the order every other writer
    # (intake, claims, decisions) uses. Taking the audit lock (in audit_record below) before
    # the case row deadlocked against a moderator deciding the same case (found under load).
    case_id = Item.objects.filter(pk=media.item_id).values_list("case_id", flat=True).first()
    if case_id is not None:
        Case.objects.select_for_update().filter(pk=case_id).first()
    made: list[Match] = []
    for c in candidates:
        hl = lists.get(c.hash_list_id)
        if hl is None or c.known_hash_id not in known:
            continue
        match, created = Match.objects.get_or_create(
            media=media,
            known_hash_id=c.known_hash_id,
            defaults={
                "hash_list": hl,
                "algorithm": c.algorithm,
                "distance": c.distance,
                "list_version": hl.version,
            },
        )
        if not created:
            continue
        made.append(match)
        Flag.objects.create(
            item_id=media.item_id,
            source=Flag.Source.HASH_MATCH,
            category=category,
            match=match,
            note=f"{hl.name} ({hl.get_algorithm_display()}) distance "
            f"{c.distance}; provider category "
            f"{known[c.known_hash_id].category or '—'}",
        )
        audit_record(
            actor=actor,
            verb="match.recorded",
            obj=match,
            data={
                "media": media.pk,
                "list": hl.name,
                "list_version": hl.version,
                "algorithm": c.algorithm,
                "distance": c.distance,
                "provider_category": known[c.known_hash_id].category,
            },
        )
    item = Item.objects.get(pk=media.item_id)
    if made and item.case_id is not None and category is not None:
        case = Case.objects.select_for_update().get(pk=item.case_id)
        changed = case_apply_severity(
            case=case,
            category=category,
            priority=category.default_priority,
            reason=f"known-hash match in {made[0].hash_list.name}",
        )
        # A known match is *less* urgent than suspected-new material (P3 vs P2): the material
        # is verified and already blocked. Re-categorise when the case was only "new_csam".
        if case.category is not None and case.category.code == "new_csam":
            only_new = (
                not Flag.objects.filter(item__case=case)
                .exclude(source=Flag.Source.HASH_MATCH)
                .exclude(category__code="new_csam")
                .exists()
            )
            if only_new and not case.immediate_risk:
                case.category = category
                case.priority = category.default_priority
                case.priority_reasons = [
                    *case.priority_reasons,
                    {
                        "at": timezone.now().isoformat(),
                        "priority": case.priority,
                        "reason": "verified known-hash match: known material, already blocked",
                    },
                ]
                changed = [*set(changed) | {"category", "priority", "priority_reasons"}]
        if changed:
            case.save(update_fields=[*changed, "updated_at"])
    return made


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


def media_rescan_batch(
    *, hash_list_id: int, after_id: int, batch_size: int = 500, actor: Actor = WORKER
) -> int | None:
    """Retroactive matching: match already-hashed media against one (changed) list.

    Processes one batch of media after `after_id`; returns the cursor for the next batch, or
    None when done. The task re-enqueues itself with the cursor.
    """
    hash_list = HashList.objects.filter(pk=hash_list_id, enabled=True).first()
    if hash_list is None:
        return None
    field = hash_list.algorithm
    batch = list(
        Media.objects.filter(pk__gt=after_id, hash_status=Media.HashStatus.DONE).order_by("pk")[
            :batch_size
        ]
    )
    if not batch:
        return None
    for media in batch:
        values = {
            "sha256": media.sha256,
            "md5": media.md5,
            "sha1": media.sha1,
            "pdq": media.pdq,
            "phash": media.phash,
            "dhash": media.dhash,
        }
        if not values.get(field):
            continue
        candidates = match_all(values, only_list=hash_list)
        if candidates:
            with transaction.atomic():
                matches_record(media=media, candidates=candidates, actor=actor)
    return batch[-1].pk
