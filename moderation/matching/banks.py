"""Hash lists ("banks") as match indexes: exact lookups in the database, perceptual in an index.

Each enabled perceptual list is indexed once per list version into files under
SAFEGUARD_INDEX_DIR/<list id>-v<version>/ and memory-mapped by every worker process, so N
workers share one copy of the pages instead of holding N (PERFORMANCE.md, "Index sharing").
"""

from __future__ import annotations

import fcntl
import shutil
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import numpy as np
from django.conf import settings

from ..models import HashList, KnownHash
from .index import HammingIndex, hex_to_codes


@dataclass(frozen=True)
class Candidate:
    hash_list_id: int
    known_hash_id: int
    algorithm: str
    distance: int


@dataclass
class _LoadedBank:
    index: HammingIndex
    ids: np.ndarray


_cache: dict[tuple[int, int], _LoadedBank] = {}
_cache_lock = Lock()


def _bank_dir(hash_list: HashList) -> Path:
    return Path(settings.SAFEGUARD_INDEX_DIR) / f"{hash_list.pk}-v{hash_list.version}"


def _build(hash_list: HashList, directory: Path) -> None:
    rows = list(
        KnownHash.objects.filter(hash_list=hash_list).order_by("id").values_list("id", "value")
    )
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
        # Drop older versions of this list from the process cache.
        for old in [k for k in _cache if k[0] == hash_list.pk]:
            del _cache[old]
        _cache[key] = bank
        return bank


def match_perceptual(value: str, hash_list: HashList) -> list[Candidate]:
    if not value:
        return []
    bank = bank_load(hash_list)
    hits = bank.index.search(value, hash_list.threshold)
    return [
        Candidate(hash_list.pk, int(bank.ids[row]), hash_list.algorithm, int(distance))
        for row, distance in hits
    ]


def match_exact(digests: dict[str, str], lists: list[HashList]) -> list[Candidate]:
    """Exact-hash lookup (SHA-256, MD5, SHA-1) in the database: one indexed query."""
    by_alg = {hl.pk: hl for hl in lists if hl.is_exact}
    if not by_alg:
        return []
    values = {v for alg, v in digests.items() if v and alg in HashList.EXACT}
    found = KnownHash.objects.filter(hash_list_id__in=by_alg, value__in=values).values_list(
        "id", "hash_list_id", "value"
    )
    out = []
    for kh_id, list_id, value in found:
        hl = by_alg[list_id]
        if digests.get(hl.algorithm) == value:
            out.append(Candidate(list_id, kh_id, hl.algorithm, 0))
    return out


def match_all(hashes: dict[str, str], *, only_list: HashList | None = None) -> list[Candidate]:
    """Every match of one media's hashes against the enabled lists (or one list)."""
    lists = [only_list] if only_list is not None else list(HashList.objects.filter(enabled=True))
    candidates = match_exact(hashes, lists)
    for hl in lists:
        if not hl.is_exact:
            candidates.extend(match_perceptual(hashes.get(hl.algorithm, ""), hl))
    return candidates
