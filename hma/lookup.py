"""Lookups: HMA's /m/raw_lookup, /m/lookup, /m/index/status and /m/compare over Safeguard's
hash lists (OpenMediaMatch blueprints/matching.py), matching as intake does.

A lookup searches the enabled lists of the signal's algorithm with the functions intake
matching uses (moderation.matching.banks), so the same media gets the same matches as
``GET /api/v1/items/{id}``:

1. Each list's own threshold; withdrawn entries are not in its index (nor in exact lookups),
   and every match is checked against the database (withdrawn since? list disabled since?).
2. PDQ quality gate: a list is not searched perceptually for media below its quality floor.
   An upload brings its quality; a hash alone may bring one (``quality``), and a degenerate
   hash (a flat or near-uniform image, ``pdq_is_degenerate``) counts as quality 0.
3. Rotated and mirrored copies (a list's dihedral switch) are matched for uploads, which bring
   the hashes of their eight forms; a bare hash has only its own form.
4. A vPDQ signal is matched against vPDQ lists (Meta's video comparison, the list's
   percentages) and its frames against PDQ lists (a known image inside a video), as intake
   matches a video's frames.
5. Matches of quarantined entries are not reported as matches: quarantine means "no automatic
   action", and an HMA client acts on what it gets. They are listed in the notes.

May import hma selectors and signal types, moderation's matching and models. Writes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moderation.matching.banks import (
    Candidate,
    FrameInput,
    bank_load,
    bank_size,
    match_exact,
    match_frames_to_images,
    match_frames_to_videos,
    match_perceptual,
)
from moderation.media.hashing import pdq_is_degenerate
from moderation.media.video import FrameHash
from moderation.models import HashList, KnownHash

from .errors import HmaError, UnknownSignalType
from .selectors import SearchList, entries_live, lists_to_search
from .signal_types import SignalType, enabled_signal_types, signal_type_get

_PERCEPTUAL = frozenset({"pdq", "phash", "dhash"})


@dataclass(frozen=True)
class Match:
    """One reportable match: a list entry (HMA's bank content) and how close it is."""

    bank_content_id: int
    distance: str
    bank: str
    matching_enabled_ratio: float
    hash_list: HashList
    candidate: Candidate
    category: str = ""
    added_at: datetime | None = None


@dataclass
class Lookup:
    matches: list[Match] = field(default_factory=list)
    # Safeguard's notes: lists not searched (quality gate) and quarantined matches.
    notes: list[dict[str, Any]] = field(default_factory=list)


def _distance(candidate: Candidate) -> str:
    """HMA's ``similarity_info.pretty_str()``: the bit distance, or vPDQ's match percentages
    as python-threatexchange's ``VPDQSimilarityInfo`` prints them."""
    if candidate.algorithm == HashList.Algorithm.VPDQ:
        return f"{candidate.query_percent or 0:.0f}%[{candidate.listed_percent or 0:.0f}%]"
    return str(candidate.distance)


def signal_lookup(
    *,
    signal_type: SignalType,
    value: str,
    banks: set[str] | None = None,
    quality: int | None = None,
    dihedral: Sequence[str] = (),
    frames: Sequence[FrameHash] = (),
) -> Lookup:
    """The matches of one normalised signal value (see the module docstring). ``quality`` and
    ``dihedral`` come with a PDQ hash from an upload, ``frames`` with a vPDQ signal (parsed
    from ``value`` when not given)."""
    algorithm = signal_type.algorithm
    is_vpdq = algorithm == HashList.Algorithm.VPDQ
    searched = lists_to_search({algorithm, "pdq"} if is_vpdq else {algorithm}, banks)
    notes: list[dict[str, Any]] = []
    found: list[tuple[SearchList, Candidate]] = []

    def note(entry: SearchList, text: str, **extra: Any) -> None:
        notes.append(
            {
                "signal_type": signal_type.name,
                "bank": entry.bank,
                "list": entry.hash_list.name,
                "note": text,
                **extra,
            }
        )

    exact = {s.hash_list.pk: s for s in searched if s.hash_list.is_exact}
    if exact:
        for candidate in match_exact({algorithm: value}, [s.hash_list for s in exact.values()]):
            found.append((exact[candidate.hash_list_id], candidate))
    if is_vpdq:
        inputs = [
            FrameInput(f.timestamp, f.quality, f.pdq) for f in (frames or signal_type.frames(value))
        ]
        for entry in searched:
            hl = entry.hash_list
            match = match_frames_to_videos if hl.algorithm == "vpdq" else match_frames_to_images
            found += [(entry, c) for c in match(inputs, hl)]
    elif algorithm in _PERCEPTUAL:
        gate = quality
        if algorithm == "pdq" and gate is None and pdq_is_degenerate(value):
            gate = 0
        for entry in searched:
            hl = entry.hash_list
            if algorithm == "pdq" and gate is not None and gate < hl.min_quality:
                note(
                    entry,
                    f"not searched: PDQ quality {gate} is below the list's floor of "
                    f"{hl.min_quality} (a flat or featureless image)",
                )
                continue
            if algorithm == "pdq" and hl.match_dihedral and not dihedral:
                note(entry, "rotated and mirrored copies are matched for uploads only")
            found += [
                (entry, c)
                for c in match_perceptual(
                    value, hl, dihedral=dihedral if algorithm == "pdq" else ()
                )
            ]
    if not found:
        return Lookup(notes=notes)
    # The entries' state now, whatever the index (or the lists read a moment ago) says: an
    # entry withdrawn, or a list disabled, since then is no match.
    live = entries_live(c.known_hash_id for _, c in found)
    matches = []
    for entry, candidate in found:
        state = live.get(candidate.known_hash_id)
        if state is None:
            continue  # withdrawn, or its list disabled, since the index was built
        if state.quarantined_at is not None:
            note(
                entry,
                f"quarantined ({state.quarantine_reason or 'under review'}): matched, but not "
                "for automatic action",
                bank_content_id=candidate.known_hash_id,
                distance=_distance(candidate),
            )
            continue
        matches.append(
            Match(
                bank_content_id=candidate.known_hash_id,
                distance=_distance(candidate),
                bank=entry.bank,
                matching_enabled_ratio=entry.matching_enabled_ratio,
                hash_list=entry.hash_list,
                candidate=candidate,
                category=state.category,
                added_at=state.added_at,
            )
        )
    matches.sort(key=lambda m: (m.bank, m.candidate.distance, m.bank_content_id))
    return Lookup(matches=matches, notes=notes)


def coinflip(seed: str | None, *, bypass: bool) -> float:
    """HMA's per-lookup coin flip: a bank is reported when its matching_enabled_ratio is at
    least this; seeded by the caller's ``seed`` for a consistent answer, 0 when bypassed."""
    return 0.0 if bypass else random.Random(seed).random()


def index_status(signal_type_name: str | None = None) -> dict[str, dict[str, Any]]:
    """Per signal type: whether its lists' indexes are present, when its lists last changed
    (HMA's ``built_to``, epoch seconds) and how many entries they match (``size``).

    Perceptual lists are loaded (built, if this is the first use of their current version),
    so a status call also warms the indexes a lookup would otherwise build.
    """
    types = enabled_signal_types()
    if signal_type_name is not None:
        if signal_type_name not in types:
            raise UnknownSignalType(f"No such signal type '{signal_type_name}'")
        types = {signal_type_name: types[signal_type_name]}
    by_algorithm: dict[str, list[HashList]] = {}
    for hl in HashList.objects.filter(
        enabled=True, algorithm__in={st.algorithm for st in types.values()}
    ):
        by_algorithm.setdefault(hl.algorithm, []).append(hl)
    status: dict[str, dict[str, Any]] = {}
    for algorithm in {st.algorithm for st in types.values()}:
        lists = by_algorithm.get(algorithm, [])
        if not lists:
            status[algorithm] = {"present": False, "built_to": -1, "size": 0}
            continue
        if algorithm in _PERCEPTUAL:
            size = sum(bank_size(bank_load(hl)) for hl in lists)
        else:
            if algorithm == HashList.Algorithm.VPDQ:
                for hl in lists:
                    bank_load(hl)
            size = KnownHash.objects.filter(hash_list__in=lists, withdrawn_at=None).count()
        built_to = max(int(hl.updated_at.timestamp()) for hl in lists)
        status[algorithm] = {"present": True, "built_to": built_to, "size": size}
    return {name: dict(status[st.algorithm]) for name, st in types.items()}


def signals_compare(body: Any) -> dict[str, list[Any]]:
    """HMA's /m/compare: ``{signal type: [a, b]}`` → ``{signal type: [match, similarity]}``."""
    if not isinstance(body, dict):
        raise HmaError("Request input was not a dict")
    result = {}
    for name, pair in body.items():
        if not isinstance(pair, list):
            raise HmaError(f"Comparison hashes for {name} was not a list")
        if len(pair) != 2:
            raise HmaError("Comparison hash list length must be exactly 2")
        result[name] = signal_type_get(name).compare(pair[0], pair[1])
    return result
