"""Evidence at rest: encrypt files stored before encryption, and verify every stored file.

The format and the keys are core.evidence_crypto's; this module knows which files are
evidence (media files and their contact-sheet thumbnails) and what each must hash to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from core.audit import Actor, audit_record
from core.evidence_crypto import (
    EvidenceCryptoError,
    encrypt_to_temp,
    evidence_digests,
    file_key_ref,
    is_encrypted,
)
from core.models import EvidenceKey
from moderation.models import Media, MediaFrame


@dataclass(frozen=True)
class EvidenceFile:
    """One stored evidence file: a media file (with its custody SHA-256) or a thumbnail."""

    media: Media
    path: Path
    name: str
    sha256: str | None  # None: a thumbnail, which has no custody digest (GCM still checks it)
    frame: int | None = None

    @property
    def label(self) -> str:
        what = f"media {self.media.pk}"
        return what if self.frame is None else f"{what} frame {self.frame}"


def evidence_files(*, media_ids: list[int] | None = None) -> Iterator[EvidenceFile]:
    """Every evidence file that should be on disk (media not purged, and their thumbnails)."""
    media = Media.objects.filter(purged_at__isnull=True).order_by("pk")
    if media_ids is not None:
        media = media.filter(pk__in=media_ids)
    for row in media.iterator(chunk_size=500):
        if row.file.name:
            yield EvidenceFile(row, Path(row.file.path), row.file.name, row.sha256)
    frames = (
        MediaFrame.objects.filter(media__purged_at__isnull=True)
        .exclude(thumbnail="")
        .select_related("media")
        .order_by("media_id", "frame")
    )
    if media_ids is not None:
        frames = frames.filter(media_id__in=media_ids)
    for frame in frames.iterator(chunk_size=500):
        yield EvidenceFile(
            frame.media, Path(frame.thumbnail.path), frame.thumbnail.name, None, frame.frame
        )


@dataclass
class EncryptionRun:
    encrypted: int = 0
    already: int = 0
    refused: list[str] = field(default_factory=list)


def evidence_encrypt_legacy(*, actor: Actor, limit: int | None = None) -> EncryptionRun:
    """Encrypt every evidence file still stored in plaintext (written before encryption at
    rest), each under a new data key, in place. Resumable and idempotent: encrypted files are
    skipped.

    Per file: the ciphertext is written beside it and checked — its plaintext must hash to the
    custody SHA-256 (a media file that no longer does is left untouched and reported, as it is
    evidence of tampering) — then its key row and an audit event commit together, and only
    after that commit is the plaintext replaced. A crash at any point leaves the plaintext, or
    the ciphertext with its committed key, never a file without its key.
    """
    run = EncryptionRun()
    for item in evidence_files():
        if limit is not None and run.encrypted >= limit:
            break
        try:
            if is_encrypted(item.path):
                run.already += 1
                continue
            if item.sha256 is not None:
                actual = evidence_digests(item.path).sha256
                if actual != item.sha256:
                    run.refused.append(
                        f"{item.label}: plaintext hashes to {actual}, custody says {item.sha256}"
                        " — left as it is"
                    )
                    continue
        except (OSError, EvidenceCryptoError) as exc:
            run.refused.append(f"{item.label}: {exc}")
            continue
        _encrypt_one(item, actor)
        run.encrypted += 1
    return run


def _encrypt_one(item: EvidenceFile, actor: Actor) -> None:
    tmp: Path | None = None
    try:
        with transaction.atomic():
            tmp, result = encrypt_to_temp(item.path, item.path.parent, name=item.name)
            data: dict[str, object] = {"key": str(result.key_ref), "size": result.size}
            if item.frame is not None:
                data["frame"] = item.frame
            audit_record(actor=actor, verb="media.encrypted_at_rest", obj=item.media, data=data)
            written = tmp
            transaction.on_commit(lambda: os.replace(written, item.path))
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


@dataclass
class Verification:
    checked: int = 0
    encrypted: int = 0
    plaintext: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def evidence_verify(*, allow_plaintext: bool = False) -> Verification:
    """Check every stored evidence file: it decrypts (every chunk's GCM tag verifies, its data
    key unwraps) and a media file's plaintext hashes to its custody SHA-256; a file still in
    plaintext is a problem unless allowed. Purged media must have no live data key."""
    report = Verification()
    for item in evidence_files():
        report.checked += 1
        try:
            digests = evidence_digests(item.path)
        except FileNotFoundError:
            report.problems.append(f"{item.label}: the file is missing ({item.name})")
            continue
        except (OSError, EvidenceCryptoError) as exc:
            report.problems.append(f"{item.label}: {exc}")
            continue
        if digests.encrypted:
            report.encrypted += 1
        else:
            report.plaintext += 1
            if not allow_plaintext:
                report.problems.append(
                    f"{item.label}: stored in plaintext (run manage.py encrypt_evidence)"
                )
        if item.sha256 is not None and digests.sha256 != item.sha256:
            report.problems.append(
                f"{item.label}: decrypts to bytes hashing to {digests.sha256}, custody says "
                f"{item.sha256}"
            )
    for media in Media.objects.filter(purged_at__isnull=False).only("pk", "file"):
        live = EvidenceKey.objects.filter(name=media.file.name, shredded_at__isnull=True)
        ref = file_key_ref(media.file.path) if media.file.name else None
        if live.exists() or (
            ref is not None
            and EvidenceKey.objects.filter(pk=ref, shredded_at__isnull=True).exists()
        ):
            report.problems.append(f"media {media.pk}: purged, but its data key was not shredded")
    return report
