"""Preservation and retention: legal holds block deletion; the purge leaves receipts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from core.evidence_crypto import evidence_keys_shred
from moderation.models import Case, LegalHold, Media, MediaFrame, PurgeReceipt


class HeldError(Exception):
    """The evidence is under a legal hold and may not be deleted."""


def legal_hold_place(
    *, case: Case, reason: str, actor: Actor, days: int | None = None
) -> LegalHold:
    days = days or settings.SAFEGUARD_LEGAL_HOLD_DAYS
    now = timezone.now()
    hold = LegalHold.objects.create(
        case=case,
        reason=reason[:300],
        starts_at=now,
        expires_at=now + timedelta(days=days),
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(
        actor=actor,
        verb="legal_hold.placed",
        obj=hold,
        data={"case": case.pk, "reason": reason[:300], "days": days},
    )
    return hold


def case_is_held(case_id: int, *, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return LegalHold.objects.filter(
        case_id=case_id, released_at__isnull=True, expires_at__gt=now
    ).exists()


def media_delete(*, media: Media, actor: Actor, reason: str) -> PurgeReceipt:
    """Delete one evidence file (bytes only; hashes and metadata stay) and write a receipt.

    The file's data keys are destroyed in the same transaction (crypto-shredding; the audit
    event lists them), then the bytes are unlinked after commit.

    Refused while the media's case is under a legal hold.
    """
    case_id = media.item.case_id
    if case_id is not None and case_is_held(case_id):
        raise HeldError(f"Case {case_id} is under a legal hold; its evidence cannot be deleted.")
    with transaction.atomic():
        locked = Media.objects.select_for_update().get(pk=media.pk)
        if locked.purged_at is not None:
            return PurgeReceipt.objects.filter(media_id_ref=locked.pk).latest("deleted_at")
        path = Path(locked.file.path)
        Media.objects.filter(pk=locked.pk).update(purged_at=timezone.now())
        # Frames of a video are derived imagery: their thumbnails go with the file (their
        # hashes stay, like the file's).
        frames = MediaFrame.objects.filter(media=locked).exclude(thumbnail="")
        thumbnail_names = [f.thumbnail.name for f in frames]
        thumbnails = [Path(f.thumbnail.path) for f in frames]
        # Crypto-shred, in this transaction: the data keys go with the receipt, so every copy
        # of these files made since (a failed unlink, a snapshot) is unreadable ciphertext.
        shredded = evidence_keys_shred(
            names=[locked.file.name, *thumbnail_names], paths=[path, *thumbnails]
        )
        receipt = PurgeReceipt.objects.create(
            media_id_ref=locked.pk,
            case_id_ref=case_id,
            sha256=locked.sha256,
            size=locked.size,
            reason=reason[:300],
            keys_shredded=shredded,
        )
        frames.update(thumbnail="")
        audit_record(
            actor=actor,
            verb="media.purged",
            obj=locked,
            data={
                "sha256": locked.sha256,
                "reason": reason[:300],
                "receipt": receipt.pk,
                "keys_shredded": shredded,
            },
        )

        def _delete_bytes() -> None:
            path.unlink(missing_ok=True)
            for thumbnail in thumbnails:
                thumbnail.unlink(missing_ok=True)

        # Delete the bytes only once the receipt is committed with the transaction; a crash
        # in between leaves an orphan file the next run can find, never a missing receipt.
        transaction.on_commit(_delete_bytes)
    return receipt


def retention_purge(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Beat: purge evidence of cases closed longer than the retention period, except held ones."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SAFEGUARD_RETENTION_DAYS)
    candidates = Media.objects.filter(
        purged_at__isnull=True,
        item__case__status__in=["decided", "closed"],
        item__case__decided_at__lt=cutoff,
    ).select_related("item")[:limit]
    purged = skipped = 0
    for media in candidates:
        try:
            media_delete(
                media=media,
                actor=WORKER,
                reason=f"retention: case closed over {settings.SAFEGUARD_RETENTION_DAYS} days ago",
            )
            purged += 1
        except HeldError:
            skipped += 1
    return {"purged": purged, "held": skipped}
