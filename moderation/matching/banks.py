"""Hash lists ("banks") as match indexes: exact lookups in the database, perceptual in an index.

Each enabled perceptual list is indexed into files under SAFEGUARD_INDEX_DIR and memory-mapped
by every worker process, so N workers share one copy of the pages instead of holding N
(PERFORMANCE.md, "Index sharing").

PDQ, pHash and dHash lists (issue 15 part 8) keep a **base** (``<list id>-<created ms>-b<snapshot
ms>/``, built from the entries as of its snapshot) plus a **delta** read from the database: the
entries whose ``changed_at`` (stamped by a trigger on every add, withdrawal, restore) is past
the snapshot. New entries are scanned directly, withdrawn ones hide their base rows
(tombstones); results stay exact (:class:`~moderation.matching.index.LayeredIndex`). A list
change therefore costs a small database read, not a rebuild on every machine; the refresh
task merges the delta into a new base in the background once it passes MERGE_THRESHOLD.
Freshness (write to matchable) and the index's shape are kept per list in
``<list id>-<created ms>.status.json`` (:func:`bank_status`, shown to admins).
vPDQ lists are still indexed once per list version (``...-v<version>/``).
A vPDQ list's index holds every frame of every listed video, with each frame's video, time,
quality and hash key beside it (``frames.npz``).

Videos and animated images are matched frame by frame (:func:`match_frames`): each frame
against the PDQ image lists (a known image inside a video), and the frames together against
the vPDQ lists (:mod:`moderation.matching.vpdq`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from threading import Lock
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from ..media.hashing import DIHEDRAL
from ..models import HashList, KnownFrame, KnownHash
from .index import HammingIndex, LayeredIndex, hex_to_codes
from .vpdq import Segment, match_videos, runs


@dataclass(frozen=True)
class Candidate:
    hash_list_id: int
    known_hash_id: int
    algorithm: str
    distance: int
    # Frames of a video or animation: where the match is, and (vPDQ) the shares matched.
    segments: tuple[Segment, ...] = ()
    query_percent: float | None = None
    listed_percent: float | None = None
    # PDQ: how the media is turned or mirrored relative to the listed image ("" if it isn't).
    transform: str = ""


@dataclass(frozen=True)
class FrameInput:
    """One hashed frame of the media being matched (see moderation.media.video.FrameHash)."""

    timestamp: float
    quality: int
    pdq: str


@dataclass
class _LoadedBank:
    index: HammingIndex | LayeredIndex
    ids: np.ndarray
    # vPDQ lists only: per index row, the listed video (known hash id), time, quality, hash key.
    frames: dict[str, np.ndarray] | None = None
    video_sizes: dict[int, int] | None = None
    version: int = 0
    # Layered banks (base + delta - tombstones): the base directory and its snapshot, the
    # delta as id -> hex value, the hidden base ids, and when the database was last read.
    base_dir: Path | None = None
    snapshot: datetime | None = None
    delta: dict[int, str] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    read_at: datetime | None = None
    refreshed: float = 0.0


_cache: dict[int, _LoadedBank] = {}
_cache_lock = Lock()

# A transaction stamps changed_at when it writes and commits later: each delta read goes back
# this far before the last read (or the base's snapshot), so a late commit is still seen.
# Longer than any write transaction of a list (imports and fetches commit chunk by chunk).
DELTA_MARGIN = timedelta(minutes=2)
# A bank whose delta (added + hidden entries) exceeds this is merged into a new base by the
# refresh task (moderation.refresh_match_index), in the background.
MERGE_THRESHOLD = 50_000
# Above this a lookup would scan too much: bank_load builds a new base itself (the old
# behaviour, kept for a bulk import that changes a large share of a list at once).
DELTA_HARD_LIMIT = 250_000
# A loaded bank re-reads its delta at least this often, even when the list's version has not
# moved: entries written by a fetch still running become matchable within a minute.
REFRESH_SECONDS = 30.0
# Freshness samples kept in a list's status file.
_LAGS_KEPT = 20


def _prefix(hash_list: HashList) -> str:
    # The list's creation time is in the name too: a database that is re-created or restored
    # reuses list ids and versions, and must not pick up an index built for other contents.
    created = int(hash_list.created_at.timestamp() * 1000)
    return f"{hash_list.pk}-{created}"


def _bank_dir(hash_list: HashList) -> Path:
    return Path(settings.SAFEGUARD_INDEX_DIR) / f"{_prefix(hash_list)}-v{hash_list.version}"


def _layered(hash_list: HashList) -> bool:
    """Base + delta for PDQ/pHash/dHash lists on PostgreSQL (whose trigger stamps changed_at
    on every write); vPDQ lists, and other databases, rebuild per list version."""
    return (
        hash_list.algorithm != HashList.Algorithm.VPDQ
        and not hash_list.is_exact
        and connection.vendor == "postgresql"
    )


def _entries(hash_list: HashList) -> QuerySet[KnownHash]:
    """The list's entries the index holds: live, and not low-quality unless the list opts in."""
    entries = KnownHash.objects.filter(hash_list=hash_list, withdrawn_at__isnull=True)
    if not hash_list.match_low_quality:
        entries = entries.filter(low_quality=False)
    return entries


def _build(hash_list: HashList, directory: Path) -> None:
    extra: dict[str, np.ndarray] = {}
    if hash_list.algorithm == HashList.Algorithm.VPDQ:
        frames = list(
            KnownFrame.objects.filter(
                known_hash__hash_list=hash_list, known_hash__withdrawn_at__isnull=True
            )
            .order_by("id")
            .values_list("id", "pdq", "known_hash_id", "timestamp", "quality")
        )
        rows = [(f[0], f[1]) for f in frames]
        keys: dict[str, int] = {}
        extra = {
            "video": np.array([f[2] for f in frames], dtype=np.int64),
            "time": np.array([f[3] for f in frames], dtype=np.float64),
            "quality": np.array([f[4] for f in frames], dtype=np.int16),
            "key": np.array([keys.setdefault(f[1], len(keys)) for f in frames], dtype=np.int64),
        }
    else:
        rows = list(_entries(hash_list).order_by("id").values_list("id", "value"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    bits = HashList.BITS[hash_list.algorithm]
    codes = (
        hex_to_codes([r[1] for r in rows], bits)
        if rows
        else np.zeros((0, bits // 8), dtype=np.uint8)
    )
    _publish(hash_list, directory, codes, ids, extra=extra)


def _publish(
    hash_list: HashList,
    directory: Path,
    codes: np.ndarray,
    ids: np.ndarray,
    *,
    extra: dict[str, np.ndarray] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Build the index over ``codes`` and publish it at ``directory`` atomically: readers see
    the whole bank or none."""
    index = HammingIndex.build(
        codes,
        bits=HashList.BITS[hash_list.algorithm],
        max_radius=HashList.MAX_THRESHOLD[hash_list.algorithm],
    )
    tmp = directory.with_name(directory.name + f".building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    index.save(tmp / "index")
    np.save(tmp / "ids.npy", ids)
    if extra:
        np.savez(tmp / "frames.npz", **extra)
    if meta is not None:
        (tmp / "base.json").write_text(json.dumps(meta))
    try:
        tmp.rename(directory)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process published it first
        if not directory.exists():
            raise


# --- layered banks: base + delta - tombstones ----------------------------------------------------


def _bases(hash_list: HashList) -> list[Path]:
    """Published bases of this list usable with its settings, newest snapshot first."""
    root = Path(settings.SAFEGUARD_INDEX_DIR)
    found: list[tuple[int, Path]] = []
    for path in root.glob(f"{_prefix(hash_list)}-b*"):
        stamp = path.name.rpartition("-b")[2]
        if not stamp.isdigit() or not (path / "base.json").exists():
            continue
        meta = json.loads((path / "base.json").read_text())
        if meta.get("match_low_quality") == hash_list.match_low_quality:
            found.append((int(stamp), path))
    return [p for _, p in sorted(found, reverse=True)]


def _build_base(hash_list: HashList) -> Path:
    """Read the list's entries and publish a base at the time of the read (its snapshot)."""
    snapshot = timezone.now()  # before the read: later changes reach the delta
    started = time.monotonic()
    rows = list(_entries(hash_list).order_by("id").values_list("id", "value"))
    bits = HashList.BITS[hash_list.algorithm]
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    codes = hex_to_codes([r[1] for r in rows], bits) if rows else np.zeros((0, bits // 8), np.uint8)
    del rows
    return _publish_base(hash_list, codes, ids, snapshot, started, "built")


def _publish_base(
    hash_list: HashList,
    codes: np.ndarray,
    ids: np.ndarray,
    snapshot: datetime,
    started: float,
    how: str,
) -> Path:
    stamp = int(snapshot.timestamp() * 1000)
    directory = Path(settings.SAFEGUARD_INDEX_DIR) / f"{_prefix(hash_list)}-b{stamp}"
    meta = {
        "snapshot": snapshot.isoformat(),
        "match_low_quality": hash_list.match_low_quality,
        "size": int(ids.size),
        "how": how,
        "built_at": timezone.now().isoformat(),
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    if not directory.exists():
        _publish(hash_list, directory, codes, ids, meta=meta)
    meta["seconds"] = round(time.monotonic() - started, 3)
    _status_update(hash_list, base=directory.name, base_meta=meta)
    # Keep the newest two bases (a process may still be opening the previous one).
    for old in _bases(hash_list)[2:]:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def _locked_build(hash_list: HashList, *, newer_than: Path | None) -> Path:
    """A new base, built once per machine: under a file lock, unless one newer than
    ``newer_than`` appeared meanwhile."""
    root = Path(settings.SAFEGUARD_INDEX_DIR)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            bases = _bases(hash_list)
            if bases and (newer_than is None or bases[0].name > newer_than.name):
                return bases[0]
            return _build_base(hash_list)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _base_snapshot(directory: Path) -> datetime:
    return datetime.fromisoformat(json.loads((directory / "base.json").read_text())["snapshot"])


def _refresh(hash_list: HashList, previous: _LoadedBank | None) -> _LoadedBank:
    """The list's layered bank, brought up to date with the database.

    Steps:
      1. The newest usable base on disk (built here, once per machine, if there is none).
      2. Read the entries changed since the last read (or since the base's snapshot), less
         DELTA_MARGIN for late commits. An entry's id never changes value, so each changed
         entry is either live-and-eligible (in the delta, unless its base row already holds
         it) or not (its base row hidden, and out of the delta).
      3. A delta over DELTA_HARD_LIMIT: build a new base now (once) and start again from it.
      4. Assemble an immutable LayeredIndex; record freshness in the list's status file.
    """
    for attempt in range(2):
        bases = _bases(hash_list)
        base_dir = bases[0] if bases else _locked_build(hash_list, newer_than=None)
        same = previous is not None and previous.base_dir == base_dir
        if same:
            assert previous is not None
            bank = _LoadedBank(
                index=previous.index,
                ids=previous.ids,
                base_dir=base_dir,
                snapshot=previous.snapshot,
                delta=dict(previous.delta),
                removed=set(previous.removed),
                read_at=previous.read_at,
            )
            base_index = (
                previous.index.base if isinstance(previous.index, LayeredIndex) else previous.index
            )
        else:
            base_index = HammingIndex.load(base_dir / "index", mmap=True)
            bank = _LoadedBank(
                index=base_index,
                ids=np.load(base_dir / "ids.npy", mmap_mode="r"),
                base_dir=base_dir,
                snapshot=_base_snapshot(base_dir),
            )
        since = (bank.read_at or bank.snapshot or timezone.now()) - DELTA_MARGIN
        read_at = timezone.now()
        changed = list(
            KnownHash.objects.filter(hash_list=hash_list, changed_at__gte=since).values_list(
                "id", "value", "withdrawn_at", "low_quality"
            )
        )
        if changed:
            ids = np.array([c[0] for c in changed], dtype=np.int64)
            pos = np.minimum(np.searchsorted(bank.ids, ids), max(0, bank.ids.size - 1))
            in_base = (bank.ids.take(pos) == ids) if bank.ids.size else np.zeros(ids.size, bool)
            for (kh_id, value, withdrawn_at, low), held in zip(
                changed, in_base.tolist(), strict=True
            ):
                eligible = withdrawn_at is None and (hash_list.match_low_quality or not low)
                if eligible and held:
                    bank.delta.pop(kh_id, None)
                    bank.removed.discard(kh_id)
                elif eligible:
                    bank.delta[kh_id] = value
                else:
                    bank.delta.pop(kh_id, None)
                    if held:
                        bank.removed.add(kh_id)
        bank.read_at = read_at
        if len(bank.delta) + len(bank.removed) > DELTA_HARD_LIMIT and attempt == 0:
            _locked_build(hash_list, newer_than=base_dir)
            previous = None
            continue
        break
    bits = HashList.BITS[hash_list.algorithm]
    delta_ids = np.array(sorted(bank.delta), dtype=np.int64)
    bank.index = LayeredIndex(
        base_index,
        bank.ids,
        delta_codes=hex_to_codes([bank.delta[i] for i in delta_ids.tolist()], bits),
        delta_ids=delta_ids,
        removed_ids=np.array(sorted(bank.removed), dtype=np.int64),
    )
    bank.version = hash_list.version
    bank.refreshed = time.monotonic()
    _freshness(hash_list, bank)
    return bank


def _status_path(hash_list: HashList) -> Path:
    return Path(settings.SAFEGUARD_INDEX_DIR) / f"{_prefix(hash_list)}.status.json"


def _status_read(hash_list: HashList) -> dict[str, Any]:
    try:
        return dict(json.loads(_status_path(hash_list).read_text()))
    except (OSError, ValueError):
        return {}


def _status_update(hash_list: HashList, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the list's status file (this machine's view), atomically."""
    path = _status_path(hash_list)
    path.parent.mkdir(parents=True, exist_ok=True)
    status = {**_status_read(hash_list), **changes}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, sort_keys=True))
    os.replace(tmp, path)
    return status


def _freshness(hash_list: HashList, bank: _LoadedBank) -> None:
    """Record how long the entries this refresh made matchable waited since they were written
    (fetched or imported): now minus the oldest changed_at not reported before."""
    status = _status_read(hash_list)
    assert bank.read_at is not None
    newest_seen = status.get("newest_change_at")
    # First refresh on this machine: the base holds what was written before its snapshot.
    assert bank.snapshot is not None
    after = datetime.fromisoformat(newest_seen) if newest_seen else bank.snapshot - DELTA_MARGIN
    pending = KnownHash.objects.filter(
        hash_list=hash_list, changed_at__lte=bank.read_at, changed_at__gt=after
    )
    span = pending.aggregate(oldest=Min("changed_at"), newest=Max("changed_at"))
    assert isinstance(bank.index, LayeredIndex)
    changes: dict[str, Any] = {
        "base": bank.base_dir.name if bank.base_dir else "",
        "delta": bank.index.delta_size,
        "tombstones": bank.index.tombstones,
        "size": bank.index.size,
        "refreshed_at": timezone.now().isoformat(),
    }
    if span["newest"] is not None:
        now = timezone.now()
        lag = round((now - span["oldest"]).total_seconds(), 3)
        changes.update(
            newest_change_at=span["newest"].isoformat(),
            matchable_at=now.isoformat(),
            lag_seconds=lag,
            lags=[*status.get("lags", []), lag][-_LAGS_KEPT:],
        )
    _status_update(hash_list, **changes)


def bank_status(hash_list: HashList) -> dict[str, Any]:
    """What an admin sees of a list's match index on this machine (read-only, from the status
    file; nothing is loaded or built): base size and build, delta and tombstones, and the
    freshness -- seconds from an entry's fetch or import to matchable, last and worst of the
    recent ones."""
    status = _status_read(hash_list)
    lags = status.get("lags", [])
    return {
        "base": status.get("base", ""),
        "base_built_at": status.get("base_meta", {}).get("built_at"),
        "base_build_seconds": status.get("base_meta", {}).get("seconds"),
        "size": status.get("size"),
        "delta": status.get("delta", 0),
        "tombstones": status.get("tombstones", 0),
        "refreshed_at": status.get("refreshed_at"),
        "matchable_at": status.get("matchable_at"),
        "freshness_seconds": status.get("lag_seconds"),
        "freshness_worst_recent_seconds": max(lags) if lags else None,
    }


# A build directory (``.building-<pid>``) older than this belongs to a process that died.
STALE_BUILD_SECONDS = 3600.0
# An index directory of no current list is removed only once this old: a list being created
# (its row not yet committed) may already have a build under way.
ORPHAN_SECONDS = 600.0


def _index_dir_kind(name: str) -> tuple[str, str, int] | None:
    """``(prefix, kind, number)`` of an index directory name -- kind ``v`` (a list version),
    ``b`` (a base snapshot) or ``building`` -- or None for anything else."""
    if ".building-" in name:
        return name.partition(".building-")[0].rpartition("-")[0], "building", 0
    head, sep, tail = name.rpartition("-")
    if not sep or len(tail) < 2 or tail[0] not in "vb" or not tail[1:].isdigit():
        return None
    return head, tail[0], int(tail[1:])


def prune_indexes(*, now: float | None = None) -> dict[str, int]:
    """Remove index directories no process will open again, on this machine; what was removed,
    by reason.

    - builds left by a process that died (older than STALE_BUILD_SECONDS);
    - indexes of lists that no longer exist, or of a database re-created since (the directory
      name holds the list's creation time), once ORPHAN_SECONDS old;
    - versioned indexes (vPDQ lists, non-PostgreSQL databases) older than the list's previous
      version (the previous one stays: a process may be opening it), and every versioned index
      of a list that now uses a base (bases keep their own newest two, ``_publish_base``).

    Removing a directory a process still has memory-mapped is safe on POSIX: the mapping keeps
    the pages until it is closed. Status files and locks are left alone.
    """
    root = Path(settings.SAFEGUARD_INDEX_DIR)
    removed = {"stale_builds": 0, "orphans": 0, "old_versions": 0}
    if not root.is_dir():
        return removed
    now = time.time() if now is None else now
    lists = {_prefix(hash_list): hash_list for hash_list in HashList.objects.all()}
    for path in root.iterdir():
        parsed = _index_dir_kind(path.name)
        if parsed is None or not path.is_dir():
            continue
        prefix, kind, number = parsed
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue  # another process removed it first
        hash_list = lists.get(prefix)
        if kind == "building":
            reason = "stale_builds" if age > STALE_BUILD_SECONDS else None
        elif hash_list is None:
            reason = "orphans" if age > ORPHAN_SECONDS else None
        elif kind == "v" and (_layered(hash_list) or number < hash_list.version - 1):
            reason = "old_versions"
        else:
            reason = None
        if reason is not None:
            shutil.rmtree(path, ignore_errors=True)
            removed[reason] += 1
    return removed


def bank_merge(hash_list: HashList) -> bool:
    """Merge the list's delta into a new base, in the background of lookups: they go on using
    the current base + delta until the new base is published and the next refresh picks it
    up. One merge per list per machine at a time (a non-blocking file lock); returns whether
    this call merged."""
    if not _layered(hash_list):
        return False
    root = Path(settings.SAFEGUARD_INDEX_DIR)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".merge-{hash_list.pk}.lock", "w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            bank = bank_load(hash_list)
            layered = bank.index
            assert isinstance(layered, LayeredIndex) and bank.read_at is not None
            if not (layered.delta_size or layered.tombstones):
                return False
            started = time.monotonic()
            codes, ids = layered.live()
            # The delta was read at read_at: the new base holds everything written before it.
            _publish_base(hash_list, codes, ids, bank.read_at, started, "merged")
            with _cache_lock:
                _cache.pop(hash_list.pk, None)  # the next lookup moves onto the new base
            return True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def bank_refresh(hash_list_id: int) -> dict[str, Any]:
    """After a list changed: make its changes matchable here now (a delta read, recording the
    freshness), and merge a new base when the delta has grown past MERGE_THRESHOLD."""
    hash_list = HashList.objects.filter(pk=hash_list_id).first()
    if hash_list is None or not (hash_list.enabled and _layered(hash_list)):
        return {}
    bank = bank_load(hash_list, fresh=True)
    layered = bank.index
    assert isinstance(layered, LayeredIndex)
    if layered.delta_size + layered.tombstones > MERGE_THRESHOLD:
        bank_merge(hash_list)
    return bank_status(hash_list)


def bank_load(hash_list: HashList, *, fresh: bool = False) -> _LoadedBank:
    """The list's match index, memory-mapped, built on first use by one process per machine.

    PDQ/pHash/dHash lists (on PostgreSQL): a base plus the delta read from the database, kept
    current by version and at least every REFRESH_SECONDS (``fresh=True``: now). vPDQ lists:
    one index per list version.
    """
    with _cache_lock:
        bank = _cache.get(hash_list.pk)
        if _layered(hash_list):
            if bank is not None and (
                bank.base_dir is None
                or bank.base_dir.parent != Path(settings.SAFEGUARD_INDEX_DIR)
                or not bank.base_dir.name.startswith(f"{_prefix(hash_list)}-b")
            ):
                bank = None  # another list that reused the id, or another index directory
            if (
                bank is not None
                and bank.version == hash_list.version
                and not fresh
                and time.monotonic() - bank.refreshed < REFRESH_SECONDS
            ):
                return bank
            bank = _refresh(hash_list, bank)
            _cache[hash_list.pk] = bank
            return bank
        if bank is not None and bank.version == hash_list.version and bank.base_dir is None:
            return bank
        directory = _bank_dir(hash_list)
        built = False
        if not directory.exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            # A file lock so that concurrent workers on this machine build the bank once.
            with open(directory.parent / ".build.lock", "w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    if not directory.exists():
                        _build(hash_list, directory)
                        built = True
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
        bank = _LoadedBank(
            index=HammingIndex.load(directory / "index", mmap=True),
            ids=np.load(directory / "ids.npy", mmap_mode="r"),
            version=hash_list.version,
        )
        if (directory / "frames.npz").exists():
            with np.load(directory / "frames.npz") as data:
                bank.frames = {name: data[name] for name in data.files}
            bank.video_sizes = _video_sizes(bank.frames, hash_list.min_quality)
        _cache[hash_list.pk] = bank
    if built:
        prune_indexes()  # the versions this build superseded, on this machine
    return bank


def bank_size(bank: _LoadedBank) -> int:
    """Entries the bank matches: for a layered bank the live set (base rows not hidden, plus
    the delta), not just the base."""
    return bank.index.size if isinstance(bank.index, LayeredIndex) else len(bank.ids)


def _search_ids(bank: _LoadedBank, queries: list[str], radius: int) -> list[list[tuple[int, int]]]:
    """(known hash id, distance) per query, whichever kind of bank."""
    if isinstance(bank.index, LayeredIndex):
        return bank.index.search_many(queries, radius)
    return [
        [(int(bank.ids[row]), d) for row, d in hits]
        for hits in bank.index.search_many(queries, radius)
    ]


def _video_sizes(frames: dict[str, np.ndarray], min_quality: int) -> dict[int, int]:
    """Distinct hashes of at least ``min_quality`` per listed video (vPDQ's denominator)."""
    eligible = frames["quality"] >= min_quality
    pairs = np.unique(np.stack([frames["video"][eligible], frames["key"][eligible]]), axis=1)
    videos, counts = np.unique(pairs[0], return_counts=True)
    return dict(zip(videos.tolist(), counts.tolist(), strict=True))


_INVERSE = {"rotate90": "rotate270", "rotate270": "rotate90"}  # the others undo themselves


def match_perceptual(
    value: str, hash_list: HashList, *, dihedral: Sequence[str] = ()
) -> list[Candidate]:
    """Listed hashes within the list's threshold of ``value``; for a PDQ list that matches
    rotations and mirrors, also of each of the media's ``dihedral`` hashes (DIHEDRAL[1:]),
    keeping for each listed hash its nearest form (the media as it is on a tie)."""
    if not value:
        return []
    bank = bank_load(hash_list)
    queries = [value]
    if hash_list.algorithm == HashList.Algorithm.PDQ and hash_list.match_dihedral:
        queries += [d for d in dihedral if d]
    best: dict[int, tuple[int, int]] = {}  # known hash id -> (distance, form)
    for form, hits in enumerate(_search_ids(bank, queries, hash_list.threshold)):
        for known, distance in hits:
            if known not in best or distance < best[known][0]:
                best[known] = (distance, form)
    return [
        Candidate(
            hash_list.pk,
            known,
            hash_list.algorithm,
            int(distance),
            # The media's form that matched undoes the copy's turn: a copy turned 90 degrees
            # matches in its 270-degree form. Record what the copy is: the inverse.
            transform=_INVERSE.get(DIHEDRAL[form], DIHEDRAL[form]) if form else "",
        )
        for known, (distance, form) in sorted(best.items(), key=lambda kv: (kv[1], kv[0]))
    ]


def match_exact(digests: dict[str, str], lists: list[HashList]) -> list[Candidate]:
    """Exact-hash lookup (SHA-256, MD5, SHA-1) in the database: one indexed query."""
    return match_exact_many([digests], lists)[0]


def match_exact_many(
    digests: Sequence[dict[str, str]], lists: Sequence[HashList]
) -> list[list[Candidate]]:
    """match_exact for several media at once (a hashing batch): one indexed query for all,
    then each media's candidates, in the order of ``digests``."""
    by_alg = {hl.pk: hl for hl in lists if hl.is_exact}
    if not by_alg or not digests:
        return [[] for _ in digests]
    values = {v for d in digests for alg, v in d.items() if v and alg in HashList.EXACT}
    found = list(
        KnownHash.objects.filter(
            hash_list_id__in=by_alg, value__in=values, withdrawn_at__isnull=True
        ).values_list("id", "hash_list_id", "value")
    )
    out: list[list[Candidate]] = []
    for d in digests:
        mine = []
        for kh_id, list_id, value in found:
            hl = by_alg[list_id]
            if d.get(hl.algorithm) == value:
                mine.append(Candidate(list_id, kh_id, hl.algorithm, 0))
        out.append(mine)
    return out


def _lists(only_list: HashList | None, lists: Sequence[HashList] | None) -> list[HashList]:
    if only_list is not None:
        return [only_list]
    if lists is not None:
        return list(lists)
    return list(HashList.objects.filter(enabled=True))


def match_all(
    hashes: dict[str, str],
    *,
    pdq_quality: int | None = None,
    pdq_dihedral: Sequence[str] = (),
    only_list: HashList | None = None,
    lists: Sequence[HashList] | None = None,
    exact: bool = True,
) -> list[Candidate]:
    """Every match of one media's hashes against the enabled lists (or one list; or
    ``lists``, the enabled lists as the caller read them a moment ago, for a batch).
    ``exact=False``: perceptual lists only (the caller looks the digests of a whole batch up
    with match_exact_many).

    Exact digests always; PDQ only when its quality reaches the list's floor (a flat image's
    near-constant hash would match other flat images), then with rotations and mirrors if the
    list asks for them; pHash and dHash as they are.
    """
    lists = _lists(only_list, lists)
    candidates = match_exact(hashes, lists) if exact else []
    for hl in lists:
        if hl.is_exact or hl.algorithm == HashList.Algorithm.VPDQ:
            continue
        if hl.algorithm == HashList.Algorithm.PDQ:
            if pdq_quality is not None and pdq_quality < hl.min_quality:
                continue
            candidates.extend(match_perceptual(hashes.get("pdq", ""), hl, dihedral=pdq_dihedral))
        else:
            candidates.extend(match_perceptual(hashes.get(hl.algorithm, ""), hl))
    return candidates


def _sampling_step(frames: list[FrameInput]) -> float:
    gaps = np.diff(sorted({f.timestamp for f in frames}))
    return float(np.median(gaps)) if gaps.size else 1.0


def match_frames_to_images(frames: list[FrameInput], hash_list: HashList) -> list[Candidate]:
    """Known images inside a video: every frame of at least the list's quality floor against a
    PDQ image list. One candidate per listed image, at its best distance, with the runs of
    frames that show it."""
    usable = [f for f in frames if f.quality >= hash_list.min_quality]
    if not usable:
        return []
    bank = bank_load(hash_list)
    hits = _search_ids(bank, [f.pdq for f in usable], hash_list.threshold)
    found: dict[int, tuple[int, list[float]]] = {}
    for frame, frame_hits in zip(usable, hits, strict=True):
        for known, distance in frame_hits:
            best, times = found.get(known, (distance, []))
            times.append(frame.timestamp)
            found[known] = (min(best, distance), times)
    step = _sampling_step(frames)
    return [
        Candidate(
            hash_list.pk,
            known,
            HashList.Algorithm.PDQ,
            distance,
            segments=tuple(runs(times, step)),
        )
        for known, (distance, times) in found.items()
    ]


def match_frames_to_videos(frames: list[FrameInput], hash_list: HashList) -> list[Candidate]:
    """Listed videos matching these frames by Meta's vPDQ comparison (moderation.matching.vpdq)."""
    bank = bank_load(hash_list)
    # Frames below the quality floor are never compared: don't search for them either (a black
    # frame's hash is near thousands of listed black frames).
    frames = [f for f in frames if f.quality >= hash_list.min_quality]
    if not frames or bank.frames is None or bank.video_sizes is None:
        return []
    assert isinstance(bank.index, HammingIndex)  # vPDQ lists: one index per version
    hits = bank.index.search_many([f.pdq for f in frames], hash_list.threshold)
    matches = match_videos(
        query_pdq=[f.pdq for f in frames],
        query_times=[f.timestamp for f in frames],
        query_quality=[f.quality for f in frames],
        hits=hits,
        row_video=bank.frames["video"],
        row_time=bank.frames["time"],
        row_quality=bank.frames["quality"],
        row_pdq=bank.frames["key"],
        video_sizes=bank.video_sizes,
        min_quality=hash_list.min_quality,
        listed_percent=hash_list.listed_percent,
        query_percent=hash_list.query_percent,
        step=_sampling_step(frames),
    )
    return [
        Candidate(
            hash_list.pk,
            m.video,
            HashList.Algorithm.VPDQ,
            m.distance,
            segments=tuple(m.segments),
            query_percent=m.query_percent,
            listed_percent=m.listed_percent,
        )
        for m in matches
    ]


def match_frames(
    frames: list[FrameInput],
    *,
    only_list: HashList | None = None,
    lists: Sequence[HashList] | None = None,
) -> list[Candidate]:
    """Every match of a video's (or animation's) frames: PDQ image lists and vPDQ lists."""
    lists = _lists(only_list, lists)
    candidates: list[Candidate] = []
    for hl in lists:
        if hl.algorithm == HashList.Algorithm.PDQ:
            candidates.extend(match_frames_to_images(frames, hl))
        elif hl.algorithm == HashList.Algorithm.VPDQ:
            candidates.extend(match_frames_to_videos(frames, hl))
    return candidates
