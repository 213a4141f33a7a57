"""Intake: store a flagged item and its evidence, flag it, put it in its subject's case.

Also user reports about items. Hashing and the rules are enqueued after commit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import FileField
from django.utils import timezone

from core import sqlrows
from core.audit import Actor, audit_record, audit_record_many
from core.enqueue import enqueue_on_commit
from core.errors import DomainError
from core.evidence_crypto import encrypt_file
from moderation.media.validation import MediaRejected, SniffResult, validate_media
from moderation.models import Case, Flag, Item, Media
from moderation.services.hashing import media_batches
from principles.models import DEFAULT_SLA, HarmCategory, Priority

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


# Items per transaction: long enough to amortise a commit, short enough that a chunk's locks
# (its subjects' case rows) are held for milliseconds.
CHUNK_SIZE = 100


@dataclass
class BatchEntry:
    """One valid item of a batch, at its position in the request."""

    index: int
    data: ItemInput
    upload: UploadedFile | None = None


@dataclass
class BatchResult:
    """What happened to one entry: `item` and `created`, or `error` (a DomainError)."""

    index: int
    item: Item | None = None
    created: bool = False
    error: DomainError | None = None

    @property
    def status(self) -> int:
        if self.error is not None:
            return self.error.status
        return 201 if self.created else 200


@dataclass
class _New:
    entry: BatchEntry
    staged: StoredUpload | None = None
    sniff: SniffResult | None = None
    final_path: Path | None = None
    item: Item | None = None
    created: bool = True
    duplicates: list[int] = field(default_factory=list)


def _key(data: ItemInput) -> tuple[str, str]:
    return data.source, data.external_id


def items_submit_batch(
    *,
    entries: Sequence[BatchEntry],
    actor: Actor,
    submitted_by: Any = None,
    platform_account: Any = None,
    chunk_size: int = CHUNK_SIZE,
) -> list[BatchResult]:
    """Store a batch of items; one result per entry, in the order given.

    1. Idempotent per (platform_account, source, external_id), like `item_submit`: items
       already stored are answered 200 with their id, found in one query. An item twice in
       the batch is stored once; every copy is answered with its id (the first 201).
    2. Each new item's upload streams into staging with its SHA-256 and is validated; a
       refused file fails only its own entry.
    3. The new items are written `chunk_size` at a time, each chunk in one transaction:
       cases locked or opened for all its subjects at once, then bulk INSERTs of items, media,
       flags and audit events. A chunk is applied whole or not at all.
    4. After each commit: the media go to hashing in a few batched messages, the cases to the
       rules in one. With the broker down the rows stay pending and the hashing sweeper
       (moderation.sweep_stuck_media) picks them up.
    A concurrent submitter racing for the same key makes the chunk's INSERT fail: the chunk
    is rolled back and retried item by item, each answered with whichever item won.
    """
    results: dict[int, BatchResult] = {}
    first: dict[tuple[str, str], _New] = {}
    for entry in entries:
        key = _key(entry.data)
        if key in first:
            first[key].duplicates.append(entry.index)
        else:
            first[key] = _New(entry)
    existing = _existing_items(list(first), platform_account)
    new: list[_New] = []
    for key, pending in first.items():
        item = existing.get(key)
        if item is not None:
            _answer(results, pending, item, created=False)
        else:
            new.append(pending)
    staged = _stage(new, results)
    categories: dict[str, HarmCategory] = {}  # read once, in the first chunk that needs them
    for start in range(0, len(staged), chunk_size):
        chunk = staged[start : start + chunk_size]
        try:
            _store_chunk(chunk, categories, actor, submitted_by, platform_account)
        except IntegrityError:
            # Another request stored one of these keys first (its commit landed after our
            # lookup). Item by item: each either stores or finds the winner.
            for pending in chunk:
                _store_one(pending, categories, actor, submitted_by, platform_account)
        except BaseException:
            for pending in staged[start:]:
                _discard(pending)
            raise
        for pending in chunk:
            assert pending.item is not None
            _answer(results, pending, pending.item, created=pending.created)
    return [results[entry.index] for entry in entries]


def _answer(results: dict[int, BatchResult], pending: _New, item: Item, *, created: bool) -> None:
    results[pending.entry.index] = BatchResult(pending.entry.index, item=item, created=created)
    for index in pending.duplicates:
        results[index] = BatchResult(index, item=item, created=False)


def _existing_items(keys: list[tuple[str, str]], platform_account: Any) -> dict[Any, Item]:
    if not keys:
        return {}
    wanted = set(keys)
    external_ids = sorted({external_id for _, external_id in keys})
    # Plain SQL (core.sqlrows): compiling this read through the ORM cost more CPU than running
    # it, ~1 ms of a single request's ~10 (benchmarks/LOAD.md, session 11). No ORDER BY: nothing
    # to sort on a unique key.
    account = "t.platform_account_id " + ("IS NULL" if platform_account is None else "= %s")
    found = sqlrows.select(
        Item,
        f"{account} AND t.external_id IN ({sqlrows.placeholders(len(external_ids))})",
        [*([] if platform_account is None else [platform_account.pk]), *external_ids],
        fields=("id", "source", "external_id", "status", "case"),
    )
    return {(i.source, i.external_id): i for i in found if (i.source, i.external_id) in wanted}


def _stage(new: list[_New], results: dict[int, BatchResult]) -> list[_New]:
    """Stream and validate each upload; a refused one is answered with its error."""
    ok: list[_New] = []
    for pending in new:
        upload = pending.entry.upload
        if upload is not None:
            try:
                pending.staged = evidence_stage_upload(upload)
                pending.sniff = validate_media(
                    pending.staged.path,
                    max_bytes=settings.SAFEGUARD_MAX_UPLOAD_BYTES,
                    max_pixels=settings.SAFEGUARD_MAX_PIXELS,
                )
            except MediaRejected as exc:
                _discard(pending)
                for index in [pending.entry.index, *pending.duplicates]:
                    results[index] = BatchResult(index, error=exc)
                continue
            except BaseException:
                _discard(pending)
                for other in new:
                    _discard(other)
                raise
        ok.append(pending)
    return ok


def _discard(pending: _New) -> None:
    if pending.final_path is not None:
        pending.final_path.unlink(missing_ok=True)
        pending.final_path = None
    if pending.staged is not None:
        pending.staged.path.unlink(missing_ok=True)


def _default_categories() -> dict[str, HarmCategory]:
    """The categories intake assumes for unlabelled imagery, read once per batch."""
    # Plain SQL (core.sqlrows), for the same reason as the idempotency read.
    found = sqlrows.select(HarmCategory, "t.code IN (%s, %s)", ["new_csam", "livestream"])
    return {c.code: c for c in found}


def _needs_default(data: ItemInput) -> bool:
    return data.category_hint is None and data.kind in (
        Item.Kind.IMAGE,
        Item.Kind.VIDEO,
        Item.Kind.LIVESTREAM,
    )


def _category_for(data: ItemInput, categories: dict[str, HarmCategory]) -> HarmCategory | None:
    if data.category_hint is not None:
        return data.category_hint
    if data.kind in (Item.Kind.IMAGE, Item.Kind.VIDEO, Item.Kind.LIVESTREAM):
        # Flagged imagery with no known-hash match yet is suspected new material (P2) until
        # hashing says otherwise (DESIGN.md §6).
        return categories.get("livestream" if data.kind == Item.Kind.LIVESTREAM else "new_csam")
    return None


def _build_item(data: ItemInput, *, staged: bool, submitted_by: Any, platform_account: Any) -> Item:
    return Item(
        source=data.source,
        external_id=data.external_id,
        kind=data.kind,
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
        platform_account=platform_account,
        status=Item.Status.PROCESSING if staged else Item.Status.READY,
    )


def _reason(kind: str, flag_source: str, category: HarmCategory | None) -> str:
    return f"intake: {kind} flagged via {flag_source}" + (
        f" as {category.code}" if category else ""
    )


def _attach_cases(
    items: list[Item], categories: list[HarmCategory | None], reasons: list[str]
) -> tuple[list[Case], set[int]]:
    """Put each item into its subject's open case or a new one, for all subjects at once
    (what `case_attach_item` does per item). Inside the chunk's transaction.

    1. Lock the subjects' open cases in id order (every batch locks in the same order, so two
       batches can't deadlock on them); raise each one's priority for its items.
    2. Open one case per remaining subject in one INSERT, in subject order: the partial
       unique constraint `case_one_open_per_subject` refuses it if a concurrent intake opened
       one of them first — then lock again and join those.
    Both steps share one savepoint, so a lost race releases the locks of step 1 before the
    next attempt: holding them while the next attempt locks a lower id (the case the winner
    just opened) is the out-of-order wait that deadlocked concurrent batches for the same
    subjects (tests/test_scale_out.py). Subjects are inserted in sorted order for the same
    reason: two batches opening cases for {a, b} must not each wait on the other's second.
    A lost race means the winner committed that subject's case, which the next attempt finds
    and joins: each subject can cost one attempt at most, so the attempts are bounded by the
    subjects (three were not enough for eight concurrent requests opening five subjects).
    Returns the new cases (to audit) and the pks of every case touched.
    """
    now = timezone.now()
    by_subject: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        by_subject.setdefault(item.subject_key, []).append(n)
    for _ in range(len(by_subject) + 2):
        try:
            with transaction.atomic():
                # Plain SQL (core.sqlrows): the ORM's compilation of this read was ~1 ms of a
                # single request's CPU (benchmarks/LOAD.md, session 11).
                cases = {
                    c.subject_key: c
                    for c in sqlrows.select(
                        Case,
                        f"t.subject_key IN ({sqlrows.placeholders(len(by_subject))}) AND t.active",
                        list(by_subject),
                        order_by="t.id",
                        for_update=True,
                    )
                }
                opened: list[Case] = []
                for subject in sorted(by_subject):
                    if subject in cases:
                        continue
                    positions = by_subject[subject]
                    item, category = items[positions[0]], categories[positions[0]]
                    priority = category.default_priority if category is not None else Priority.P4
                    case = Case(
                        subject_key=subject,
                        source=item.source,
                        priority=priority,
                        category=category,
                        sla_due_at=now + (category.sla if category else DEFAULT_SLA[Priority.P4]),
                    )
                    case.add_reason(reasons[positions[0]], at=now)
                    opened.append(case)
                sqlrows.insert(Case, opened)
        except IntegrityError:
            continue  # another intake opened one of these subjects' cases first: join it
        break
    else:  # pragma: no cover - only if cases are closed as fast as they are opened
        raise RuntimeError("Could not attach a batch of items to their cases")
    fresh = {c.pk for c in opened}
    for case in opened:
        cases[case.subject_key] = case
    changed: dict[int, set[str]] = {}
    for subject, positions in by_subject.items():
        case = cases[subject]
        for n in positions:
            items[n].case = case
            if case.pk in fresh and n == positions[0]:
                continue  # the item that opened it set its priority
            category = categories[n]
            priority = category.default_priority if category is not None else Priority.P4
            fields = case.raise_priority(
                priority=priority,
                category=category,
                reason=reasons[n],
                now=now,
            )
            changed.setdefault(case.pk, set()).update(fields)
    for pk, fields in changed.items():
        if fields:
            case = next(c for c in cases.values() if c.pk == pk)
            case.save(update_fields=[*sorted(fields), "updated_at"])
    return opened, {c.pk for c in cases.values()}


def _store_chunk(
    chunk: list[_New],
    categories: dict[str, HarmCategory],
    actor: Actor,
    submitted_by: Any,
    platform_account: Any,
) -> None:
    """One transaction: cases, items, media (files moved into place), flags, audit events;
    hashing and rules enqueued for after its commit. Sets `pending.item` for each entry.

    The staged files are encrypted into the evidence store inside the transaction (their
    data keys are rows of it); the ciphertext is removed if it rolls back, and the plaintext
    staging copy only after it commits, so a retry (item by item) finds it again and nothing
    is half-written. They are encrypted *before* the subjects' cases are locked: writing and
    syncing a chunk's files took tens of milliseconds, during which a moderator deciding one
    of those cases waited (1.4 database sessions on `Lock/transactionid` under load.py's full
    mix with batch intake; benchmarks/LOAD.md).
    """
    items = [
        _build_item(
            p.entry.data,
            staged=p.staged is not None,
            submitted_by=submitted_by,
            platform_account=platform_account,
        )
        for p in chunk
    ]
    try:
        with transaction.atomic():
            if not categories and any(_needs_default(p.entry.data) for p in chunk):
                categories.update(_default_categories())
            chosen = [_category_for(p.entry.data, categories) for p in chunk]
            reasons = [
                _reason(p.entry.data.kind, p.entry.data.flag_source, c)
                for p, c in zip(chunk, chosen, strict=True)
            ]
            placed = _place_files(chunk)
            opened, case_ids = _attach_cases(items, chosen, reasons)
            sqlrows.insert(Item, items)
            media = _media_rows(chunk, items, placed)
            flags = sqlrows.insert(
                Flag,
                [
                    Flag(
                        item=item,
                        source=p.entry.data.flag_source,
                        category=category,
                        note=p.entry.data.note,
                        reporter=p.entry.data.reporter,
                        created_by=submitted_by,
                    )
                    for p, item, category in zip(chunk, items, chosen, strict=True)
                ],
            )
            events: list[tuple[str, Any, dict[str, Any]]] = [
                ("case.opened", c, {"priority": c.priority, "subject_key": c.subject_key})
                for c in opened
            ]
            # The audit names the item and case only, never the reported user's details
            # (IP, email, phone, linked accounts): that personal data stays on the item.
            for item, flag, category in zip(items, flags, chosen, strict=True):
                events.append(
                    (
                        "item.received",
                        item,
                        {
                            "source": item.source,
                            "external_id": item.external_id,
                            "kind": item.kind,
                            "case": item.case_id,
                            "flag": flag.pk,
                            "category": category.code if category else None,
                        },
                    )
                )
            for m in media:
                events.append(
                    (
                        "media.stored",
                        m,
                        {
                            "item": m.item_id,
                            "sha256": m.sha256,
                            "size": m.size,
                            "mime": m.mime,
                            "custody": "received via intake; SHA-256 taken while streaming",
                        },
                    )
                )
            audit_record_many(actor=actor, events=events)
            enqueue_on_commit("moderation.apply_rules_batch", sorted(case_ids), "intake")
            videos = {m.pk for m in media if m.kind == "video"}
            for batch in media_batches(
                [m.pk for m in media],
                batch_size=settings.SAFEGUARD_HASH_BATCH_SIZE,
                videos=videos,
            ):
                enqueue_on_commit("moderation.hash_media_batch", batch)
    except BaseException:
        for pending in chunk:
            _unplace(pending)
        raise
    for pending, item in zip(chunk, items, strict=True):
        pending.item = item
        if pending.staged is not None:
            pending.staged.path.unlink(missing_ok=True)


_MEDIA_FILE = cast(FileField, Media._meta.get_field("file"))


def _place_files(chunk: list[_New]) -> dict[int, str]:
    """Encrypt each staged file into the evidence store: {position in chunk: storage name}."""
    placed: dict[int, str] = {}
    for n, pending in enumerate(chunk):
        staged = pending.staged
        if staged is None or pending.sniff is None:
            continue
        # The media row comes later (it needs its item): the name is the field's own, made
        # without an instance (evidence_path uses none).
        relative = _MEDIA_FILE.generate_filename(None, staged.original_name)
        final_path = Path(settings.EVIDENCE_ROOT) / relative
        final_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pending.final_path = final_path
        # Encrypted at rest under a data key of its own (core.evidence_crypto), whose row
        # commits with the media row.
        encrypted = encrypt_file(staged.path, final_path, name=relative)
        if encrypted.size != staged.size:
            raise OSError(f"staged evidence changed on disk before it was stored: {relative}")
        placed[n] = relative
    return placed


def _media_rows(chunk: list[_New], items: list[Item], placed: dict[int, str]) -> list[Media]:
    rows: list[Media] = []
    for n, relative in placed.items():
        staged, sniff = chunk[n].staged, chunk[n].sniff
        assert staged is not None and sniff is not None
        media = Media(
            item=items[n],
            original_name=staged.original_name,
            declared_type=staged.declared_type,
            size=staged.size,
            mime=sniff.mime,
            kind=sniff.kind,
            width=sniff.width,
            height=sniff.height,
            sha256=staged.sha256,
        )
        media.file.name = relative
        rows.append(media)
    return sqlrows.insert(Media, rows)


def _unplace(pending: _New) -> None:
    """Remove a stored copy whose transaction rolled back (the staged file stays)."""
    if pending.final_path is not None:
        pending.final_path.unlink(missing_ok=True)
        pending.final_path = None


def _store_one(
    pending: _New,
    categories: dict[str, HarmCategory],
    actor: Actor,
    submitted_by: Any,
    platform_account: Any,
) -> None:
    """The fallback after a lost race: store one item, or answer with the one that won."""
    try:
        _store_chunk([pending], categories, actor, submitted_by, platform_account)
    except IntegrityError:
        data = pending.entry.data
        winner = Item.objects.get(
            source=data.source, external_id=data.external_id, platform_account=platform_account
        )
        _discard(pending)
        pending.item, pending.created = winner, False


def item_submit(
    *,
    data: ItemInput,
    upload: UploadedFile | None,
    actor: Actor,
    submitted_by: Any = None,
    platform_account: Any = None,
) -> tuple[Item, bool]:
    """Intake of one item: a batch of one (`items_submit_batch`), so both paths share every
    guarantee. Raises the refusal (MediaRejected) of a file it would not store.

    1. Resubmission of (source, external_id) within the same namespace — `platform_account`,
       the submitting platform's service account, or None for in-house submissions — returns
       the stored item unchanged (idempotent). Another platform's ids are invisible here.
    2. The upload streams into private staging with its SHA-256; then its type is sniffed from
       content and validated (bombs, truncation, unsupported types) — before any row is written.
    3. One transaction writes item, media, flag, case and audit events; the staged file is moved
       into place inside it and moved back if the transaction fails, so nothing is
       half-written.
    4. Hashing and the rules are enqueued after commit.
    Returns (item, created).
    """
    [result] = items_submit_batch(
        entries=[BatchEntry(0, data, upload)],
        actor=actor,
        submitted_by=submitted_by,
        platform_account=platform_account,
    )
    if result.error is not None:
        raise result.error
    assert result.item is not None
    return result.item, result.created


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
