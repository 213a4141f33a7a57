"""Hash list workflows: create/update lists, import CSV (hash, category, metadata) with progress."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from core.enqueue import enqueue_on_commit
from core.errors import DomainError
from moderation.media.hashing import pdq_is_degenerate
from moderation.media.video import FrameHash, parse_vpdq, vpdq_format
from moderation.models import HashImport, HashList, KnownFrame, KnownHash

_HEX = re.compile(r"^[0-9a-f]+$")
_CHUNK_ROWS = 2000
_MAX_INVALID_KEPT = 1000
MAX_IMPORT_BYTES = 512 * 1024 * 1024
# A running import whose heartbeat (renewed after parsing and after every chunk) is older than
# this is dead and may be re-claimed: longer than the task's hard time limit, so a live task
# can't still hold it, and longer than parsing the largest file allowed takes.
IMPORT_STALE_AFTER = timedelta(minutes=10)


class HashListError(DomainError):
    """A clear, user-facing refusal (bad algorithm, threshold out of range, bad CSV). Refusals
    of an uploaded file name the `file` field."""


@dataclass(frozen=True)
class ParsedRow:
    line: int
    value: str
    category: str
    metadata: dict[str, Any]


def hash_list_upsert(
    *,
    name: str,
    algorithm: str,
    actor: Actor,
    threshold: int | None = None,
    provider: str | None = None,
    enabled: bool | None = None,
    verified: bool | None = None,
    min_quality: int | None = None,
    listed_percent: float | None = None,
    query_percent: float | None = None,
    match_dihedral: bool | None = None,
    match_low_quality: bool | None = None,
) -> tuple[HashList, bool]:
    """Create a list, or update its settings; every change audited, version bumped on change."""
    if algorithm not in HashList.Algorithm.values:
        raise HashListError(
            f"Unknown algorithm {algorithm!r}; choose one of "
            f"{', '.join(HashList.Algorithm.values)}."
        )
    if provider is not None and provider not in HashList.Provider.values:
        raise HashListError(
            f"Unknown provider {provider!r}; choose one of {', '.join(HashList.Provider.values)}."
        )
    limit = HashList.MAX_THRESHOLD.get(algorithm, 0)
    if threshold is not None and not 0 <= threshold <= limit:
        raise HashListError(
            f"Threshold {threshold} is out of range for {algorithm} (0 to {limit})."
        )
    if min_quality is not None and not 0 <= min_quality <= 100:
        raise HashListError(f"Minimum quality {min_quality} is out of range (0 to 100).")
    for label, percent in (("listed", listed_percent), ("query", query_percent)):
        if percent is not None and not 0 <= percent <= 100:
            raise HashListError(f"The {label} percentage {percent} is out of range (0 to 100).")
    video = {
        k: v
        for k, v in {
            "min_quality": min_quality,
            "listed_percent": listed_percent,
            "query_percent": query_percent,
            "match_dihedral": match_dihedral,
            "match_low_quality": match_low_quality,
        }.items()
        if v is not None
    }
    with transaction.atomic():
        hl = HashList.objects.select_for_update().filter(name=name).first()
        if hl is None:
            hl = HashList.objects.create(
                name=name,
                algorithm=algorithm,
                threshold=threshold
                if threshold is not None
                else min(limit, {"pdq": 31, "vpdq": 31, "phash": 8, "dhash": 8}.get(algorithm, 0)),
                provider=provider or HashList.Provider.INTERNAL,
                enabled=True if enabled is None else enabled,
                verified=bool(verified),
                **video,
            )
            audit_record(
                actor=actor,
                verb="hash_list.created",
                obj=hl,
                data={
                    "name": name,
                    "algorithm": algorithm,
                    "threshold": hl.threshold,
                    "provider": hl.provider,
                    "enabled": hl.enabled,
                    "verified": hl.verified,
                },
            )
            return hl, True
        if hl.algorithm != algorithm:
            raise HashListError(f"List {name!r} uses {hl.algorithm}, not {algorithm}.")
        changes = {
            k: v
            for k, v in {
                "threshold": threshold,
                "provider": provider,
                "enabled": enabled,
                "verified": verified,
                **video,
            }.items()
            if v is not None and getattr(hl, k) != v
        }
        if changes:
            for key, value in changes.items():
                setattr(hl, key, value)
            hl.version += 1
            hl.save(update_fields=[*changes, "version", "updated_at"])
            audit_record(
                actor=actor,
                verb="hash_list.updated",
                obj=hl,
                data={"changes": changes, "version": hl.version},
            )
        return hl, False


# Signal types of python-threatexchange / HMA signal files, by the list algorithm they feed.
SIGNAL_TYPES = {
    "pdq": "pdq",
    "md5": "md5",
    "video_md5": "md5",
    "photo_md5": "md5",
    "sha256": "sha256",
    "sha1": "sha1",
    "phash": "phash",
    "dhash": "dhash",
}


def parse_entries(
    text: str, algorithm: str, fmt: str
) -> tuple[list[ParsedRow], list[dict[str, Any]]]:
    """Rows of an uploaded list file in one of the formats (see HashImport.Format); returns
    (valid rows, invalid [{line, error}])."""
    if fmt == HashImport.Format.SIGNALS:
        return parse_signals(text, algorithm)
    if fmt == HashImport.Format.JSONL:
        return parse_jsonl(text, algorithm)
    return parse_rows(text, algorithm)


def hash_value_error(value: str, algorithm: str) -> str | None:
    """The error for a hash value (lowercase hex) that is not of the algorithm, or None."""
    length = HashList.HEX_LENGTH[algorithm]
    if len(value) != length or not _HEX.match(value):
        return f"not a {length}-character hex {algorithm} hash"
    return None


def parse_signals(text: str, algorithm: str) -> tuple[list[ParsedRow], list[dict[str, Any]]]:
    """python-threatexchange / HMA signal files: ``<signal type> <value>`` per line (``#``
    comments and blank lines skipped), e.g. ``pdq f8f8…``. Lines of another algorithm than
    the list's are refused with their line number."""
    valid: list[ParsedRow] = []
    invalid: list[dict[str, Any]] = []
    for line, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split(None, 1)
        if len(parts) != 2:
            invalid.append({"line": line, "error": "expected '<signal type> <value>'"})
            continue
        signal_type, value = parts[0].lower(), parts[1].strip().lower()
        if SIGNAL_TYPES.get(signal_type) != algorithm:
            invalid.append(
                {
                    "line": line,
                    "error": f"signal type {signal_type!r} is not this list's {algorithm}",
                }
            )
            continue
        if error := hash_value_error(value, algorithm):
            invalid.append({"line": line, "error": error})
            continue
        valid.append(ParsedRow(line, value, "", {}))
    return valid, invalid


def parse_jsonl(text: str, algorithm: str) -> tuple[list[ParsedRow], list[dict[str, Any]]]:
    """JSON lines, one entry per line with one or several hashes:
    ``{"pdq": …, "md5": …, "category": …, "metadata": {…}}``. The list takes the hash of its
    algorithm; an entry without one is refused with its line number."""
    valid: list[ParsedRow] = []
    invalid: list[dict[str, Any]] = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as exc:
            invalid.append({"line": line, "error": f"not JSON: {exc.msg}"})
            continue
        if not isinstance(entry, dict):
            invalid.append({"line": line, "error": "each line must be a JSON object"})
            continue
        value = entry.get(algorithm)
        if not isinstance(value, str):
            invalid.append({"line": line, "error": f"no {algorithm} hash in this entry"})
            continue
        value = value.strip().lower()
        if error := hash_value_error(value, algorithm):
            invalid.append({"line": line, "error": error})
            continue
        metadata = entry.get("metadata", {})
        if not isinstance(metadata, dict):
            metadata = {"text": str(metadata)[:2000]}
        category = entry.get("category") or ""
        valid.append(ParsedRow(line, value, str(category)[:32], metadata))
    return valid, invalid


def parse_rows(text: str, algorithm: str) -> tuple[list[ParsedRow], list[dict[str, Any]]]:
    """Parse CSV rows `hash,category,metadata`; returns (valid rows, invalid [{line, error}]).

    A header row starting with "hash" is skipped. Metadata, when present, is a JSON object, or
    plain text (kept as ``{"text": …}``).
    """
    length = HashList.HEX_LENGTH[algorithm]
    valid: list[ParsedRow] = []
    invalid: list[dict[str, Any]] = []
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if line == 1 and row[0].strip().lower() in {"hash", "value"}:
                continue
            if len(row) > 3:
                invalid.append(
                    {"line": line, "error": f"expected at most 3 columns, got {len(row)}"}
                )
                continue
            value = row[0].strip().lower()
            if len(value) != length or not _HEX.match(value):
                invalid.append(
                    {"line": line, "error": f"not a {length}-character hex {algorithm} hash"}
                )
                continue
            category = row[1].strip()[:32] if len(row) > 1 else ""
            metadata: dict[str, Any] = {}
            text_field = row[2].strip() if len(row) > 2 else ""
            if text_field.startswith("{"):
                try:
                    metadata = json.loads(text_field)
                except json.JSONDecodeError:
                    invalid.append({"line": line, "error": "metadata is not valid JSON"})
                    continue
                if not isinstance(metadata, dict):
                    invalid.append({"line": line, "error": "metadata must be a JSON object"})
                    continue
            elif text_field:
                metadata = {"text": text_field[:2000]}  # plain-text metadata, kept as text
            valid.append(ParsedRow(line, value, category, metadata))
    except csv.Error as exc:
        invalid.append({"line": reader.line_num, "error": f"malformed CSV: {exc}"})
    return valid, invalid


def _low_quality(hash_list: HashList, row: ParsedRow) -> bool:
    """A PDQ entry not to match perceptually unless the list opts in: a degenerate hash (a
    flat or near-uniform image), or one its source rated below the list's quality floor."""
    if hash_list.algorithm != HashList.Algorithm.PDQ:
        return False
    quality = row.metadata.get("quality")
    rated_low = isinstance(quality, int | float) and quality < hash_list.min_quality
    return rated_low or pdq_is_degenerate(row.value)


def hash_import_create(
    *,
    hash_list: HashList,
    content: bytes,
    filename: str,
    actor: Actor,
    created_by: Any = None,
    category: str = "",
    fmt: str = HashImport.Format.CSV,
    sync: bool = False,
) -> HashImport:
    if len(content) > MAX_IMPORT_BYTES:
        raise HashListError(f"The file is larger than {MAX_IMPORT_BYTES} bytes.", field="file")
    if sync and hash_list.algorithm == HashList.Algorithm.VPDQ:
        raise HashListError("Sync is for lists of hashes; a vPDQ list takes videos one by one.")
    if b"\x00" in content[:65536]:
        raise HashListError("The file is not a text CSV file.", field="file")
    if hash_list.algorithm == HashList.Algorithm.VPDQ:
        # A video file says what it is (parse_video_entries reads it so): record that, not the
        # form's default, so the imports table names the format that was read.
        fmt = video_file_format(content[:64].decode("utf-8", errors="ignore"))
    elif fmt == HashImport.Format.VPDQ:
        raise HashListError(
            "vPDQ text holds a video's frame hashes: import it into a vPDQ list.", field="format"
        )
    with transaction.atomic():
        imp = HashImport(
            hash_list=hash_list,
            created_by=created_by,
            filename=filename[:200],
            default_category=category.strip()[:32],
            format=fmt,
            sync=sync,
        )
        imp.file.save(f"import-{timezone.now():%Y%m%d%H%M%S}.csv", ContentFile(content), save=False)
        imp.save(force_insert=True)
        audit_record(
            actor=actor,
            verb="hash_import.created",
            obj=imp,
            data={
                "list": hash_list.name,
                "bytes": len(content),
                "filename": filename[:200],
                "format": fmt,
                "sync": sync,
            },
        )
    return imp


def hash_import_start(
    *,
    hash_list: HashList,
    upload: Any,
    actor: Actor,
    created_by: Any = None,
    fmt: str = HashImport.Format.CSV,
    sync: bool = False,
    category: str = "",
) -> HashImport:
    """Store an uploaded list file and hand it to a worker (after commit); the console polls
    progress."""
    if upload.size > MAX_IMPORT_BYTES:
        raise HashListError(f"The file is larger than {MAX_IMPORT_BYTES} bytes.", field="file")
    imp = hash_import_create(
        hash_list=hash_list,
        content=upload.read(),
        filename=upload.name or "",
        actor=actor,
        created_by=created_by,
        fmt=fmt,
        sync=sync,
        category=category,
    )
    enqueue_on_commit("moderation.import_hash_list", imp.pk)
    return imp


def _import_claim(import_id: int, *, now: datetime) -> tuple[HashImport, bool] | None:
    """Claim an import for this run: returns (import, rerun) — rerun when a previous run died
    part-way — or None when it is finished or a live run holds it.

    Pending and failed imports are claimed, and running ones whose heartbeat went stale. The
    UPDATE names the claim it read (status and claimed_at), so of two workers that read the
    same stale claim (a redelivered task and a sweeper's, or two sweepers) exactly one changes
    the row: PostgreSQL re-checks a blocked UPDATE's WHERE against the row the first one
    committed, where claimed_at is no longer the value read, and the second changes nothing.
    """
    seen = HashImport.objects.filter(pk=import_id).values("status", "claimed_at").first()
    if seen is None or seen["status"] in (
        HashImport.Status.DONE,
        HashImport.Status.COMPLETED_WITH_ERRORS,
    ):
        return None
    running = seen["status"] == HashImport.Status.RUNNING
    if running and seen["claimed_at"] is not None and seen["claimed_at"] > now - IMPORT_STALE_AFTER:
        return None  # a live run holds it, and will finish it
    claimed = HashImport.objects.filter(
        pk=import_id, status=seen["status"], claimed_at=seen["claimed_at"]
    ).update(status=HashImport.Status.RUNNING, claimed_at=now)
    if not claimed:
        return None  # another worker claimed it first
    return HashImport.objects.select_related("hash_list").get(pk=import_id), running


def _import_heartbeat(imp: HashImport, **progress: Any) -> bool:
    """Renew this run's claim (and write its progress); False when the claim was lost to a
    re-claim, and this run must stop. Call it inside the chunk's transaction, first: its row
    lock then orders the chunk against a concurrent claim, so the chunk commits only while
    the claim is still this run's."""
    now = timezone.now()
    renewed = HashImport.objects.filter(pk=imp.pk, claimed_at=imp.claimed_at).update(
        claimed_at=now, **progress
    )
    if renewed:
        imp.claimed_at = now
    return bool(renewed)


def hash_import_sweep_stuck(*, now: datetime | None = None) -> list[int]:
    """Imports to hand to a worker again: running ones whose heartbeat went stale (the
    worker died), pending ones whose task was never delivered. The run's claim decides, so an
    import enqueued twice (two sweepers) still runs once."""
    now = now or timezone.now()
    cutoff = now - IMPORT_STALE_AFTER
    return list(
        HashImport.objects.filter(
            Q(status=HashImport.Status.RUNNING)
            & (Q(claimed_at__isnull=True) | Q(claimed_at__lt=cutoff))
            | Q(status=HashImport.Status.PENDING, created_at__lt=cutoff)
        ).values_list("pk", flat=True)[:100]
    )


@dataclass(frozen=True)
class UpsertResult:
    added: int
    updated: int
    ids: dict[str, int]  # value → KnownHash id, for every row written or found


def known_hashes_upsert(*, hash_list: HashList, rows: Sequence[ParsedRow]) -> UpsertResult:
    """Write one chunk of a list's entries (values unique within `rows`) in the caller's
    transaction: new values added; changed ones (category, metadata, or withdrawn and now
    listed again) updated; the PDQ quality gate applied.

    File imports and exchange fetches (moderation.exchanges) both write through here, so the
    quality gate and the restore-on-relisting rule are the same for both."""
    values = [r.value for r in rows]
    existing = dict(
        KnownHash.objects.filter(hash_list=hash_list, value__in=values).values_list("value", "id")
    )
    current = {kh.value: kh for kh in KnownHash.objects.filter(pk__in=existing.values())}
    changed = [
        r
        for r in rows
        if r.value in current
        and (
            current[r.value].category != r.category
            or current[r.value].metadata != r.metadata
            or current[r.value].withdrawn_at is not None  # listed again: restored
        )
    ]
    new = [r for r in rows if r.value not in current]
    written = KnownHash.objects.bulk_create(
        [
            KnownHash(
                hash_list=hash_list,
                value=r.value,
                category=r.category,
                metadata=r.metadata,
                low_quality=_low_quality(hash_list, r),
                withdrawn_at=None,
            )
            for r in new + changed
        ],
        update_conflicts=True,
        unique_fields=["hash_list", "value"],
        update_fields=["category", "metadata", "low_quality", "withdrawn_at"],
    )
    # PostgreSQL and SQLite return the ids of upserted rows; elsewhere, look them up.
    ids = {**existing, **{kh.value: kh.pk for kh in written if kh.pk is not None}}
    missing = [v for v in values if v not in ids]
    if missing:
        ids.update(
            KnownHash.objects.filter(hash_list=hash_list, value__in=missing).values_list(
                "value", "id"
            )
        )
    return UpsertResult(len(new), len(changed), ids)


def known_hashes_withdraw(
    *,
    hash_list: HashList,
    known_hash_ids: Sequence[int],
    actor: Actor,
    reason: str,
    data: dict[str, Any] | None = None,
) -> list[int]:
    """Withdraw live entries of a list in the caller's transaction: no longer matched, while
    the matches they made stay in case history marked withdrawn. Audited with the ids
    withdrawn; returns them (already-withdrawn entries are left alone)."""
    ids = list(
        KnownHash.objects.filter(
            pk__in=known_hash_ids, hash_list=hash_list, withdrawn_at__isnull=True
        ).values_list("pk", flat=True)
    )
    if ids:
        KnownHash.objects.filter(pk__in=ids, withdrawn_at__isnull=True).update(
            withdrawn_at=timezone.now()
        )
        audit_record(
            actor=actor,
            verb="hash_list.withdrawn",
            obj=hash_list,
            data={"known_hashes": ids, "reason": reason, **(data or {})},
        )
    return ids


def hash_list_changed(*, hash_list_id: int, rescan: bool) -> None:
    """A list's entries changed: bump its version (each process's match index reads the
    change as a delta on its next lookup; no rebuild) and, after commit, refresh the index now
    (freshness recorded, merged in the background when the delta is large) and, when entries
    were added or changed, rescan stored media against it (retroactive matching)."""
    HashList.objects.filter(pk=hash_list_id).update(
        version=F("version") + 1, updated_at=timezone.now()
    )
    enqueue_on_commit("moderation.refresh_match_index", hash_list_id)
    if rescan:
        enqueue_on_commit("moderation.rescan_list", hash_list_id, 0)


def hash_import_run(*, import_id: int, actor: Actor = WORKER) -> HashImport | None:
    """Import a CSV into its list in chunks, keeping progress; idempotent on re-run.

    1. Claim the import (see _import_claim): one run at a time; a run that died is re-run
       from the start, which is safe because rows upsert on (list, value).
    2. Parse; invalid rows are recorded with their line numbers and skipped, valid rows kept.
    3. Upsert chunk by chunk, counting added vs updated, renewing the claim and updating
       progress with each chunk; a run that lost its claim stops.
    4. If anything changed, bump the list version (which retires the old match index) and
       rescan stored media against the list after commit (retroactive matching).
    """
    claim = _import_claim(import_id, now=timezone.now())
    if claim is None:
        return HashImport.objects.filter(pk=import_id).first()
    imp, rerun = claim
    # A run that died part-way committed some chunks; this run finds them unchanged, so the
    # list must be re-indexed whatever it counts.
    imp.rerun = rerun  # type: ignore[attr-defined]
    hl = imp.hash_list
    if hl.algorithm == HashList.Algorithm.VPDQ:
        return _video_import_run(imp, actor)
    try:
        with imp.file.open("rb") as fh:
            raw = fh.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HashListError("The file is not UTF-8 text.") from None
        rows, invalid = parse_entries(text, hl.algorithm, imp.format)
    except (HashListError, OSError) as exc:
        return _import_fail(imp, str(exc), actor)

    # Deduplicate within the file: the last row for a value wins.
    by_value = {row.value: row for row in rows}
    unique_rows = list(by_value.values())
    if not _import_begin(imp, total=len(unique_rows), invalid=invalid):
        return HashImport.objects.get(pk=imp.pk)  # re-claimed while parsing: that run goes on
    added = updated = 0
    for start in range(0, len(unique_rows), _CHUNK_ROWS):
        chunk = unique_rows[start : start + _CHUNK_ROWS]
        with transaction.atomic():
            if not _import_heartbeat(imp, processed_rows=F("processed_rows") + len(chunk)):
                return HashImport.objects.get(pk=imp.pk)  # another run holds it now
            result = known_hashes_upsert(hash_list=hl, rows=chunk)
            added += result.added
            updated += result.updated
            HashImport.objects.filter(pk=imp.pk).update(added=added, updated=updated)
    withdrawn = 0
    if imp.sync and not by_value:
        # An empty file, or one of comments only, would withdraw the whole list.
        invalid.append({"line": 0, "error": "--sync refused: the file holds no entries"})
        HashImport.objects.filter(pk=imp.pk).update(invalid=invalid[:_MAX_INVALID_KEPT])
    elif imp.sync and not invalid:
        withdrawn = _withdraw_absent(hl, set(by_value), actor=actor)
    elif imp.sync:
        # A file with refused rows is not a trustworthy picture of the list: withdrawing what
        # it lacks could withdraw hashes whose rows were merely malformed.
        invalid.append({"line": 0, "error": "--sync skipped: the file has invalid rows"})
        HashImport.objects.filter(pk=imp.pk).update(invalid=invalid[:_MAX_INVALID_KEPT])
    return _import_finish(
        imp,
        hl,
        added=added,
        updated=updated,
        invalid=len(invalid),
        actor=actor,
        withdrawn=withdrawn,
        valid=len(unique_rows),
    )


def _import_begin(imp: HashImport, *, total: int, invalid: list[dict[str, Any]]) -> bool:
    """Reset the import's counters for this run and record the rows refused at parsing (a
    heartbeat too: parsing a large file takes a while). False when the claim was lost."""
    return _import_heartbeat(
        imp,
        total_rows=total,
        processed_rows=0,
        added=0,
        updated=0,
        invalid=invalid[:_MAX_INVALID_KEPT],
        invalid_count=len(invalid),
    )


def _import_fail(imp: HashImport, reason: str, actor: Actor) -> HashImport:
    """The file could not be read at all: the import failed, audited."""
    with transaction.atomic():
        HashImport.objects.filter(pk=imp.pk).update(
            status=HashImport.Status.FAILED, error=reason, finished_at=timezone.now()
        )
        audit_record(actor=actor, verb="hash_import.failed", obj=imp, data={"error": reason})
    return HashImport.objects.get(pk=imp.pk)


def _withdraw_absent(hl: HashList, present: set[str], *, actor: Actor) -> int:
    """Withdraw the list's live entries that the (sync) file doesn't hold: no longer matched;
    matches already made stay, marked withdrawn. Audited with the entries withdrawn."""
    live = KnownHash.objects.filter(hash_list=hl, withdrawn_at__isnull=True)
    absent = [pk for pk, value in live.values_list("pk", "value") if value not in present]
    withdrawn = 0
    for start in range(0, len(absent), _CHUNK_ROWS):
        with transaction.atomic():
            withdrawn += len(
                known_hashes_withdraw(
                    hash_list=hl,
                    known_hash_ids=absent[start : start + _CHUNK_ROWS],
                    actor=actor,
                    reason="absent from a sync import",
                )
            )
    return withdrawn


def _import_finish(
    imp: HashImport,
    hl: HashList,
    *,
    added: int,
    updated: int,
    invalid: int,
    actor: Actor,
    withdrawn: int = 0,
    valid: int | None = None,
) -> HashImport:
    """Record how the import ended — done; completed with errors when some rows were refused;
    failed when none was usable — and, if the list changed, bump its version (retiring its
    match index) and rescan stored media against it after commit."""
    if invalid and not valid and not added and not updated:
        status, error = HashImport.Status.FAILED, "No valid rows: every row was refused."
    elif invalid:
        status, error = HashImport.Status.COMPLETED_WITH_ERRORS, ""
    else:
        status, error = HashImport.Status.DONE, ""
    with transaction.atomic():
        if added or updated or withdrawn or getattr(imp, "rerun", False):
            hash_list_changed(
                hash_list_id=hl.pk, rescan=bool(added or updated or getattr(imp, "rerun", False))
            )
        HashImport.objects.filter(pk=imp.pk).update(
            status=status,
            error=error,
            withdrawn=withdrawn,
            invalid_count=invalid,
            finished_at=timezone.now(),
        )
        hl.refresh_from_db()
        audit_record(
            actor=actor,
            verb="hash_import.done" if status != HashImport.Status.FAILED else "hash_import.failed",
            obj=imp,
            data={
                "list": hl.name,
                "status": status,
                "added": added,
                "updated": updated,
                "withdrawn": withdrawn,
                "invalid": invalid,
                "version": hl.version,
            },
        )
    return HashImport.objects.get(pk=imp.pk)


# --- vPDQ (video) lists ----------------------------------------------------------------------


@dataclass(frozen=True)
class VideoEntry:
    """One listed video: its frames, the name of its file, its category."""

    line: int
    name: str
    category: str
    frames: list[FrameHash]
    metadata: dict[str, Any]

    @property
    def value(self) -> str:
        """The entry's identity: the SHA-256 of its frames in vpdq text form."""
        return hashlib.sha256(vpdq_format(self.frames).encode()).hexdigest()


def video_file_format(text: str) -> str:
    """What a video-list file holds, from its first characters: JSON lines when it opens with
    ``{`` (after a byte-order mark and blank space), Meta's vpdq text otherwise."""
    opened = text.lstrip("\ufeff").lstrip()
    return HashImport.Format.JSONL if opened.startswith("{") else HashImport.Format.VPDQ


def parse_video_entries(
    text: str, *, filename: str, category: str
) -> tuple[list[VideoEntry], list[dict[str, Any]]]:
    """Video list entries from an uploaded file; returns (valid, invalid [{line, error}]).

    Two formats: Meta's vpdq text (``frame,quality,pdq,timestamp`` lines: the whole file is
    one video, named after the file), or JSON lines, one video per line:
    ``{"name": …, "category": …, "frames": [{"frame", "timestamp", "quality", "pdq"}, …]}``.
    """
    if video_file_format(text) == HashImport.Format.VPDQ:
        try:
            frames = parse_vpdq(text)
        except ValueError as exc:
            return [], [{"line": _line_of(str(exc)), "error": str(exc)}]
        name = filename.rsplit("/", 1)[-1].removesuffix(".txt") or "video"
        return [VideoEntry(1, name[:200], category[:32], frames, {})], []
    valid: list[VideoEntry] = []
    invalid: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
                raise ValueError("each line must be an object with a frames list")
            frames = parse_vpdq(
                "\n".join(
                    f"{f['frame']},{f['quality']},{f['pdq']},{f['timestamp']}"
                    for f in data["frames"]
                )
            )
            metadata = data.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise ValueError("metadata must be an object")
            valid.append(
                VideoEntry(
                    number,
                    str(data.get("name") or f"line {number}")[:200],
                    str(data.get("category") or category)[:32],
                    frames,
                    metadata,
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            invalid.append({"line": number, "error": f"not a video entry: {exc}"})
    return valid, invalid


def _line_of(message: str) -> int:
    match = re.match(r"line (\d+):", message)
    return int(match.group(1)) if match else 1


def _video_import_run(imp: HashImport, actor: Actor) -> HashImport:
    """Import the videos of a vpdq or JSON-lines file into a vPDQ list (see hash_import_run).

    Each video is one KnownHash (value: the SHA-256 of its frames, so a re-import is a no-op)
    with its frames as KnownFrame rows, written in one transaction per video.
    """
    hl = imp.hash_list
    try:
        with imp.file.open("rb") as fh:
            text = fh.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "The file is not UTF-8 text." if isinstance(exc, UnicodeDecodeError) else str(exc)
        return _import_fail(imp, reason, actor)
    entries, invalid = parse_video_entries(
        text, filename=imp.filename, category=imp.default_category
    )
    if not _import_begin(imp, total=len(entries), invalid=invalid):
        return HashImport.objects.get(pk=imp.pk)  # re-claimed while parsing: that run goes on
    added = updated = 0
    for entry in entries:
        with transaction.atomic():
            if not _import_heartbeat(imp, processed_rows=F("processed_rows") + 1):
                return HashImport.objects.get(pk=imp.pk)  # another run holds it now
            known, created = KnownHash.objects.get_or_create(
                hash_list=hl,
                value=entry.value,
                defaults={
                    "category": entry.category,
                    "metadata": {
                        "name": entry.name,
                        "frames": len(entry.frames),
                        "duration": entry.frames[-1].timestamp,
                        **entry.metadata,
                    },
                },
            )
            if created:
                KnownFrame.objects.bulk_create(
                    [
                        KnownFrame(
                            known_hash=known,
                            frame=f.frame,
                            timestamp=f.timestamp,
                            quality=f.quality,
                            pdq=f.pdq,
                        )
                        for f in entry.frames
                    ],
                    batch_size=2000,
                    ignore_conflicts=True,
                )
                added += 1
            elif known.category != entry.category:
                KnownHash.objects.filter(pk=known.pk).update(category=entry.category)
                updated += 1
            HashImport.objects.filter(pk=imp.pk).update(added=added, updated=updated)
    return _import_finish(
        imp,
        hl,
        added=added,
        updated=updated,
        invalid=len(invalid),
        actor=actor,
        valid=len(entries),
    )
