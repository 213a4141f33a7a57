"""Hash lists ("banks") as match indexes: exact lookups in the database, perceptual in an index.

Each enabled perceptual list is indexed once per list version into files under
SAFEGUARD_INDEX_DIR/<list id>-<created ms>-v<version>/ and memory-mapped by every worker
process, so N workers share one copy of the pages instead of holding N (PERFORMANCE.md, "Index
sharing").
A vPDQ list's index holds every frame of every listed video, with each frame's video, time,
quality and hash key beside it (``frames.npz``).

Videos and animated images are matched frame by frame (:func:`match_frames`): each frame
against the PDQ image lists (a known image inside a video), and the frames together against
the vPDQ lists (:mod:`moderation.matching.vpdq`).
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import numpy as np
from django.conf import settings

from ..media.hashing import DIHEDRAL
from ..models import HashList, KnownFrame, KnownHash
from .index import HammingIndex, hex_to_codes
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
    index: HammingIndex
    ids: np.ndarray
    # vPDQ lists only: per index row, the listed video (known hash id), time, quality, hash key.
    frames: dict[str, np.ndarray] | None = None
    video_sizes: dict[int, int] | None = None


_cache: dict[tuple[int, int], _LoadedBank] = {}
_cache_lock = Lock()


def _bank_dir(hash_list: HashList) -> Path:
    # The list's creation time is in the name too: a database that is re-created or restored
    # reuses list ids and versions, and must not pick up an index built for other contents.
    created = int(hash_list.created_at.timestamp() * 1000)
    return Path(settings.SAFEGUARD_INDEX_DIR) / f"{hash_list.pk}-{created}-v{hash_list.version}"


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
        entries = KnownHash.objects.filter(hash_list=hash_list, withdrawn_at__isnull=True)
        if not hash_list.match_low_quality:
            entries = entries.filter(low_quality=False)
        rows = list(entries.order_by("id").values_list("id", "value"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    bits = HashList.BITS[hash_list.algorithm]
    codes = (
        hex_to_codes([r[1] for r in rows], bits)
        if rows
        else np.zeros((0, bits // 8), dtype=np.uint8)
    )
    index = HammingIndex.build(
        codes, bits=bits, max_radius=HashList.MAX_THRESHOLD[hash_list.algorithm]
    )
    tmp = directory.with_name(directory.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    index.save(tmp / "index")
    np.save(tmp / "ids.npy", ids)
    if extra:
        np.savez(tmp / "frames.npz", **extra)
    tmp.rename(directory)  # atomic publish: readers see the whole bank or none


def bank_load(hash_list: HashList) -> _LoadedBank:
    """The memory-mapped index of one list version, built on first use by one process."""
    key = (hash_list.pk, hash_list.version)
    with _cache_lock:
        bank = _cache.get(key)
        if bank is not None:
            return bank
        directory = _bank_dir(hash_list)
        if not directory.exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            # A file lock so that concurrent workers on this machine build the bank once.
            with open(directory.parent / ".build.lock", "w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    if not directory.exists():
                        _build(hash_list, directory)
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
        bank = _LoadedBank(
            index=HammingIndex.load(directory / "index", mmap=True),
            ids=np.load(directory / "ids.npy", mmap_mode="r"),
        )
        if (directory / "frames.npz").exists():
            with np.load(directory / "frames.npz") as data:
                bank.frames = {name: data[name] for name in data.files}
            bank.video_sizes = _video_sizes(bank.frames, hash_list.min_quality)
        # Drop older versions of this list from the process cache.
        for old in [k for k in _cache if k[0] == hash_list.pk]:
            del _cache[old]
        _cache[key] = bank
        return bank


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
    best: dict[int, tuple[int, int]] = {}  # listed row -> (distance, form)
    for form, hits in enumerate(bank.index.search_many(queries, hash_list.threshold)):
        for row, distance in hits:
            if row not in best or distance < best[row][0]:
                best[row] = (distance, form)
    return [
        Candidate(
            hash_list.pk,
            int(bank.ids[row]),
            hash_list.algorithm,
            int(distance),
            # The media's form that matched undoes the copy's turn: a copy turned 90 degrees
            # matches in its 270-degree form. Record what the copy is: the inverse.
            transform=_INVERSE.get(DIHEDRAL[form], DIHEDRAL[form]) if form else "",
        )
        for row, (distance, form) in sorted(best.items(), key=lambda kv: (kv[1], kv[0]))
    ]


def match_exact(digests: dict[str, str], lists: list[HashList]) -> list[Candidate]:
    """Exact-hash lookup (SHA-256, MD5, SHA-1) in the database: one indexed query."""
    by_alg = {hl.pk: hl for hl in lists if hl.is_exact}
    if not by_alg:
        return []
    values = {v for alg, v in digests.items() if v and alg in HashList.EXACT}
    found = KnownHash.objects.filter(
        hash_list_id__in=by_alg, value__in=values, withdrawn_at__isnull=True
    ).values_list("id", "hash_list_id", "value")
    out = []
    for kh_id, list_id, value in found:
        hl = by_alg[list_id]
        if digests.get(hl.algorithm) == value:
            out.append(Candidate(list_id, kh_id, hl.algorithm, 0))
    return out


def match_all(
    hashes: dict[str, str],
    *,
    pdq_quality: int | None = None,
    pdq_dihedral: Sequence[str] = (),
    only_list: HashList | None = None,
) -> list[Candidate]:
    """Every match of one media's hashes against the enabled lists (or one list).

    Exact digests always; PDQ only when its quality reaches the list's floor (a flat image's
    near-constant hash would match other flat images), then with rotations and mirrors if the
    list asks for them; pHash and dHash as they are.
    """
    lists = [only_list] if only_list is not None else list(HashList.objects.filter(enabled=True))
    candidates = match_exact(hashes, lists)
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
    hits = bank.index.search_many([f.pdq for f in usable], hash_list.threshold)
    found: dict[int, tuple[int, list[float]]] = {}
    for frame, frame_hits in zip(usable, hits, strict=True):
        for row, distance in frame_hits:
            known = int(bank.ids[row])
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


def match_frames(frames: list[FrameInput], *, only_list: HashList | None = None) -> list[Candidate]:
    """Every match of a video's (or animation's) frames: PDQ image lists and vPDQ lists."""
    lists = [only_list] if only_list is not None else list(HashList.objects.filter(enabled=True))
    candidates: list[Candidate] = []
    for hl in lists:
        if hl.algorithm == HashList.Algorithm.PDQ:
            candidates.extend(match_frames_to_images(frames, hl))
        elif hl.algorithm == HashList.Algorithm.VPDQ:
            candidates.extend(match_frames_to_videos(frames, hl))
    return candidates
