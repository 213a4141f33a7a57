"""Intake: store a flagged item and its evidence, flag it, put it in its subject's case.

Also user reports about items. Hashing and the rules are enqueued after commit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from core.audit import Actor, audit_record
from core.enqueue import enqueue_on_commit
from moderation.media.validation import MediaRejected, validate_media
from moderation.models import Case, Flag, Item, Media
from moderation.rules.services import enqueue_rules
from moderation.services.cases import case_attach_item
from principles.models import HarmCategory

_CHUNK = 1024 * 1024


@dataclass
class ItemInput:
    """A validated intake payload (the API's serializer builds it; seed_demo too)."""

    source: str
    external_id: str
    kind: str
    category_hint: HarmCategory | None = None
    subject_account_id: str = ""
    subject_username: str = ""
    subject_ip: str | None = None
    subject_port: int | None = None
    subject_country: str = ""
    subject_display_name: str = ""
    subject_email: str = ""
    subject_phone: str = ""
    subject_ip_seen_at: datetime | None = None
    subject_account_created_at: datetime | None = None
    subject_linked_accounts: list[str] = field(default_factory=list)
    visibility: str = Item.Visibility.UNKNOWN
    uk_linked: bool | None = None
    occurred_at: datetime | None = None
    reporter: str = ""
    note: str = ""
    text: str = ""
    url: str = ""
    flag_source: str = Flag.Source.API
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredUpload:
    """An upload streamed into the evidence store's staging area, hashed on the way in."""

    path: Path
    sha256: str
    size: int
    original_name: str
    declared_type: str


def evidence_stage_upload(upload: UploadedFile) -> StoredUpload:
    """Stream an upload into private staging while computing its SHA-256 (chain of custody).

    The size limit is enforced while streaming, so an oversized body never fills the disk.
    """
    staging = Path(settings.EVIDENCE_ROOT) / "staging"
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=staging, prefix="up-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks(_CHUNK):
                size += len(chunk)
                if size > settings.SAFEGUARD_MAX_UPLOAD_BYTES:
                    raise MediaRejected(
                        "too_large",
                        f"The file is larger than the {settings.SAFEGUARD_MAX_UPLOAD_BYTES} byte "
                        "limit.",
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return StoredUpload(
        path=Path(name),
        sha256=digest.hexdigest(),
        size=size,
        original_name=(upload.name or "")[:255],
        declared_type=(getattr(upload, "content_type", "") or "")[:100],
    )


def _category_for(data: ItemInput, kind: str) -> HarmCategory | None:
    if data.category_hint is not None:
        return data.category_hint
    if kind in (Item.Kind.IMAGE, Item.Kind.VIDEO, Item.Kind.LIVESTREAM):
        # Flagged imagery with no known-hash match yet is suspected new material (P2) until
        # hashing says otherwise (DESIGN.md §6).
        code = "livestream" if kind == Item.Kind.LIVESTREAM else "new_csam"
        return HarmCategory.objects.filter(code=code).first()
    return None


def item_submit(
    *, data: ItemInput, upload: UploadedFile | None, actor: Actor, submitted_by: Any = None
) -> tuple[Item, bool]:
    """Intake: store an item (and its evidence), flag it, put it in a case, enqueue hashing.

    1. Resubmission of (source, external_id) returns the stored item unchanged (idempotent).
    2. The upload streams into private staging with its SHA-256; then its type is sniffed from
       content and validated (bombs, truncation, unsupported types) — before any row is written.
    3. One transaction writes item, media, flag, case and audit events; the staged file is moved
       into place inside it and removed again if the transaction fails, so nothing is
       half-written.
    4. Hashing is enqueued after commit.
    Returns (item, created).
    """
    existing = Item.objects.filter(source=data.source, external_id=data.external_id).first()
    if existing is not None:
        return existing, False

    staged: StoredUpload | None = None
    sniff = None
    if upload is not None:
        staged = evidence_stage_upload(upload)
        try:
            sniff = validate_media(
                staged.path,
                max_bytes=settings.SAFEGUARD_MAX_UPLOAD_BYTES,
                max_pixels=settings.SAFEGUARD_MAX_PIXELS,
            )
        except BaseException:
            staged.path.unlink(missing_ok=True)
            raise

    kind = data.kind
    final_path: Path | None = None
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    item = Item.objects.create(
                        source=data.source,
                        external_id=data.external_id,
                        kind=kind,
                        category_hint=data.category_hint,
                        subject_account_id=data.subject_account_id,
                        subject_username=data.subject_username,
                        subject_ip=data.subject_ip,
                        subject_port=data.subject_port,
                        subject_country=data.subject_country,
                        subject_display_name=data.subject_display_name,
                        subject_email=data.subject_email,
                        subject_phone=data.subject_phone,
                        subject_ip_seen_at=data.subject_ip_seen_at,
                        subject_account_created_at=data.subject_account_created_at,
                        subject_linked_accounts=list(data.subject_linked_accounts),
                        visibility=data.visibility,
                        uk_linked=data.uk_linked,
                        occurred_at=data.occurred_at,
                        text=data.text,
                        url=data.url,
                        note=data.note,
                        reporter=data.reporter,
                        submitted_by=submitted_by,
                        status=Item.Status.PROCESSING if staged else Item.Status.READY,
                    )
            except IntegrityError:
                # A concurrent duplicate submission won the race: return its item.
                existing = Item.objects.get(source=data.source, external_id=data.external_id)
                if staged:
                    staged.path.unlink(missing_ok=True)
                return existing, False
            media = None
            if staged is not None and sniff is not None:
                media = Media(
                    item=item,
                    original_name=staged.original_name,
                    declared_type=staged.declared_type,
                    size=staged.size,
                    mime=sniff.mime,
                    kind=sniff.kind,
                    width=sniff.width,
                    height=sniff.height,
                    sha256=staged.sha256,
                )
                relative = media.file.field.generate_filename(media, staged.original_name)
                final_path = Path(settings.EVIDENCE_ROOT) / relative
                final_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.replace(staged.path, final_path)
                os.chmod(final_path, 0o600)
                media.file.name = relative
                media.save(force_insert=True)
            category = _category_for(data, kind)
            flag = Flag.objects.create(
                item=item,
                source=data.flag_source,
                category=category,
                note=data.note,
                reporter=data.reporter,
                created_by=submitted_by,
            )
            case = case_attach_item(
                item=item,
                category=category,
                actor=actor,
                reason=f"intake: {kind} flagged via {flag.source}"
                + (f" as {category.code}" if category else ""),
            )
            # The audit names the item and case only, never the reported user's details (IP,
            # email, phone, linked accounts): that personal data stays on the item, read by role.
            audit_record(
                actor=actor,
                verb="item.received",
                obj=item,
                data={
                    "source": item.source,
                    "external_id": item.external_id,
                    "kind": kind,
                    "case": case.pk,
                    "flag": flag.pk,
                    "category": category.code if category else None,
                },
            )
            enqueue_rules(case.pk, "intake")
            if media is not None:
                audit_record(
                    actor=actor,
                    verb="media.stored",
                    obj=media,
                    data={
                        "item": item.pk,
                        "sha256": media.sha256,
                        "size": media.size,
                        "mime": media.mime,
                        "custody": "received via intake; SHA-256 taken while streaming",
                    },
                )
                enqueue_on_commit("moderation.hash_media_batch", [media.pk])
    except BaseException:
        if final_path is not None:
            final_path.unlink(missing_ok=True)
        if staged is not None:
            staged.path.unlink(missing_ok=True)
        raise
    return item, True


def report_submit(
    *,
    item: Item,
    reporter: str,
    report_id: str,
    category: HarmCategory | None,
    note: str,
    actor: Actor,
    submitted_by: Any = None,
) -> tuple[Flag, bool]:
    """A user report about an item: adds a user-report Flag (once per report_id)."""
    if report_id:
        existing = Flag.objects.filter(
            item=item, source=Flag.Source.USER_REPORT, report_id=report_id
        ).first()
        if existing is not None:
            return existing, False
    with transaction.atomic():
        try:
            with transaction.atomic():
                flag = Flag.objects.create(
                    item=item,
                    source=Flag.Source.USER_REPORT,
                    category=category,
                    note=note,
                    reporter=reporter,
                    report_id=report_id,
                    created_by=submitted_by,
                )
        except IntegrityError:
            return Flag.objects.get(
                item=item, source=Flag.Source.USER_REPORT, report_id=report_id
            ), False
        if item.case_id is not None and category is not None:
            case = Case.objects.select_for_update().get(pk=item.case_id)
            changed = case.raise_priority(
                priority=category.default_priority,
                category=category,
                reason=f"user report as {category.code}",
            )
            if changed:
                case.save(update_fields=[*changed, "updated_at"])
        audit_record(
            actor=actor,
            verb="report.received",
            obj=flag,
            data={
                "item": item.pk,
                "category": category.code if category else None,
                "report_id": report_id,
            },
        )
    return flag, True
