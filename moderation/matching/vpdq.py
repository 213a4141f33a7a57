"""vPDQ matching: a video (its frames' PDQ hashes) against listed videos, and frame runs.

Meta's comparison (``vpdq/README.md``), per listed video ``C`` and query ``Q``:

1. Frames below the quality floor ``F`` are not compared, on either side; frames are a bag of
   hashes (identical hashes count once), their order is not used.
2. ``q%`` = share of the query's distinct hashes within ``D`` bits of some hash of ``C``;
   ``c%`` = share of ``C``'s distinct hashes within ``D`` bits of some hash of the query.
3. A match when ``c% >= P_c`` and ``q% >= P_q`` (Meta's defaults: ``D`` 31, ``F`` 50,
   ``P_c`` 80, ``P_q`` 0: most of the listed video is inside the upload, whatever else the
   upload holds) — and, so that thresholds of 0 don't make every video a match, at least one
   frame matched.

Candidates come from an index of every listed frame (the README's "pruning candidates"): a
video is compared only if one of its frames is within ``D`` of a query frame, which loses
nothing — a video none of whose frames is near the query has ``c% = 0``. The pairs the index
returns are all the comparison needs, so the result equals the brute-force comparison.

Segments say where: runs of matched frames on the query's timeline, each with the span of the
listed video's frames they matched.

Pure numpy; no Django.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Segment:
    query_start: float
    query_end: float
    listed_start: float | None = None
    listed_end: float | None = None

    def as_json(self) -> dict[str, float]:
        data = {"query_start": self.query_start, "query_end": self.query_end}
        if self.listed_start is not None and self.listed_end is not None:
            data.update(listed_start=self.listed_start, listed_end=self.listed_end)
        return data


@dataclass
class VideoMatch:
    video: int
    query_percent: float
    listed_percent: float
    distance: int
    segments: list[Segment] = field(default_factory=list)


def runs(
    query_times: Sequence[float], step: float, listed_times: dict[float, list[float]] | None = None
) -> list[Segment]:
    """Group matched query timestamps into runs (gaps of more than ~1.5 sampling steps split a
    run); each run carries the span of the listed timestamps its frames matched, if given."""
    times = sorted(set(query_times))
    if not times:
        return []
    gap = max(step, 1e-6) * 1.5
    out: list[Segment] = []
    start = previous = times[0]

    def close(begin: float, end: float) -> None:
        listed = (
            [t for q in times if begin <= q <= end for t in listed_times.get(q, [])]
            if listed_times
            else []
        )
        out.append(
            Segment(
                round(begin, 3),
                round(end, 3),
                round(min(listed), 3) if listed else None,
                round(max(listed), 3) if listed else None,
            )
        )

    for t in times[1:]:
        if t - previous > gap:
            close(start, previous)
            start = t
        previous = t
    close(start, previous)
    return out


def match_videos(
    *,
    query_pdq: Sequence[str],
    query_times: Sequence[float],
    query_quality: Sequence[int],
    hits: Sequence[Sequence[tuple[int, int]]],
    row_video: np.ndarray,
    row_time: np.ndarray,
    row_quality: np.ndarray,
    row_pdq: np.ndarray,
    video_sizes: dict[int, int],
    min_quality: int,
    listed_percent: float,
    query_percent: float,
    step: float = 1.0,
) -> list[VideoMatch]:
    """Listed videos that match the query, by Meta's comparison (see the module docstring).

    ``hits[i]`` are the index rows (listed frames) within the distance threshold of query frame
    ``i``; ``row_*`` describe each row: its video, timestamp, quality and a key for its hash
    (equal keys for equal hashes). ``video_sizes`` counts each video's distinct hashes of at least
    ``min_quality``.
    """
    query_keys: dict[str, int] = {}
    eligible_query: set[int] = set()
    for pdq, quality in zip(query_pdq, query_quality, strict=True):
        key = query_keys.setdefault(pdq, len(query_keys))
        if quality >= min_quality:
            eligible_query.add(key)
    if not eligible_query:
        return []
    matched_query: dict[int, set[int]] = defaultdict(set)  # video -> query hash keys matched
    matched_listed: dict[int, set[int]] = defaultdict(set)  # video -> listed hash keys matched
    best: dict[int, int] = {}
    times: dict[int, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for i, frame_hits in enumerate(hits):
        if query_quality[i] < min_quality:
            continue
        qkey = query_keys[query_pdq[i]]
        for row, distance in frame_hits:
            if row_quality[row] < min_quality:
                continue
            video = int(row_video[row])
            matched_query[video].add(qkey)
            matched_listed[video].add(int(row_pdq[row]))
            best[video] = min(best.get(video, distance), distance)
            times[video][float(query_times[i])].append(float(row_time[row]))
    out = []
    for video, keys in matched_query.items():
        listed_total = video_sizes.get(video, 0)
        if not listed_total:
            continue
        q_pct = 100.0 * len(keys) / len(eligible_query)
        c_pct = 100.0 * len(matched_listed[video]) / listed_total
        if c_pct >= listed_percent and q_pct >= query_percent:
            out.append(
                VideoMatch(
                    video=video,
                    query_percent=round(q_pct, 2),
                    listed_percent=round(c_pct, 2),
                    distance=best[video],
                    segments=runs(list(times[video]), step, times[video]),
                )
            )
    out.sort(key=lambda m: (-m.listed_percent, m.video))
    return out


def brute_force_videos(
    *,
    query: Sequence[tuple[str, float, int]],
    videos: dict[int, Sequence[tuple[str, float, int]]],
    distance: int,
    min_quality: int,
    listed_percent: float,
    query_percent: float,
) -> dict[int, tuple[float, float]]:
    """The README's comparison, every frame against every frame: ``{video: (q%, c%)}`` of the
    matching videos. The oracle the indexed matcher is tested and benchmarked against."""

    def bag(frames: Sequence[tuple[str, float, int]]) -> list[int]:
        return sorted({int(pdq, 16) for pdq, _, quality in frames if quality >= min_quality})

    q_bag = bag(query)
    out = {}
    if not q_bag:
        return out
    for video, frames in videos.items():
        c_bag = bag(frames)
        if not c_bag:
            continue
        q_hit = sum(1 for q in q_bag if any((q ^ c).bit_count() <= distance for c in c_bag))
        c_hit = sum(1 for c in c_bag if any((q ^ c).bit_count() <= distance for q in q_bag))
        q_pct, c_pct = 100.0 * q_hit / len(q_bag), 100.0 * c_hit / len(c_bag)
        if c_hit and c_pct >= listed_percent and q_pct >= query_percent:
            out[video] = (round(q_pct, 2), round(c_pct, 2))
    return out
