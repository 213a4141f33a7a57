"""vPDQ comparison through the frame index equals Meta's brute-force comparison."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.matching.index import HammingIndex, hex_to_codes
from moderation.matching.vpdq import brute_force_videos, match_videos, runs

RNG = np.random.default_rng(20261130)


def _random_pdq() -> int:
    return int.from_bytes(RNG.bytes(32), "big")


def _near(value: int, bits: int) -> int:
    for bit in RNG.choice(256, size=bits, replace=False):
        value ^= 1 << int(bit)
    return value


def _hex(value: int) -> str:
    return f"{value:064x}"


def _video(
    length: int, *, base: list[int] | None = None, noise: int = 0
) -> list[tuple[str, float, int]]:
    values = base or [_random_pdq() for _ in range(length)]
    return [
        # Mostly good frames, a few below the quality floor (fades, flat frames).
        (_hex(_near(v, noise) if noise else v), float(t), 20 if t % 9 == 4 else 90)
        for t, v in enumerate(values[:length])
    ]


def _indexed(query, videos, *, distance, min_quality, listed_percent, query_percent):
    rows = [(video, pdq, t, q) for video, frames in videos.items() for pdq, t, q in frames]
    keys: dict[str, int] = {}
    index = HammingIndex.build(hex_to_codes([r[1] for r in rows], 256), bits=256, max_radius=31)
    row_key = np.array([keys.setdefault(r[1], len(keys)) for r in rows])
    row_quality = np.array([r[3] for r in rows])
    row_video = np.array([r[0] for r in rows])
    sizes: dict[int, int] = {}
    for video, frames in videos.items():
        sizes[video] = len({p for p, _, q in frames if q >= min_quality})
    matches = match_videos(
        query_pdq=[p for p, _, _ in query],
        query_times=[t for _, t, _ in query],
        query_quality=[q for _, _, q in query],
        hits=index.search_many([p for p, _, _ in query], distance),
        row_video=row_video,
        row_time=np.array([r[2] for r in rows]),
        row_quality=row_quality,
        row_pdq=row_key,
        video_sizes=sizes,
        min_quality=min_quality,
        listed_percent=listed_percent,
        query_percent=query_percent,
    )
    return {m.video: (m.query_percent, m.listed_percent) for m in matches}


class VpdqComparisonTests:
    @pytest.mark.parametrize("thresholds", [(80.0, 0.0), (0.0, 0.0), (50.0, 50.0), (100.0, 100.0)])
    def test_the_indexed_comparison_equals_brute_force(
        self, thresholds: tuple[float, float]
    ) -> None:
        listed_percent, query_percent = thresholds
        source = [_random_pdq() for _ in range(40)]
        videos = {
            1: _video(40, base=source),  # the query's source
            2: _video(20, base=source[10:30]),  # a clip of it
            3: _video(30),  # unrelated
            4: _video(40, base=source, noise=40),  # too far
            5: _video(25, base=[_near(v, 12) for v in source[:25]]),  # a re-encode
        }
        query = _video(40, base=source, noise=6)
        settings = dict(
            distance=31,
            min_quality=50,
            listed_percent=listed_percent,
            query_percent=query_percent,
        )
        expected = brute_force_videos(query=query, videos=videos, **settings)
        assert _indexed(query, videos, **settings) == expected
        if thresholds == (80.0, 0.0):
            assert set(expected) == {1, 2, 5}

    def test_low_quality_frames_are_left_out_on_both_sides(self) -> None:
        flat = _hex(0)
        videos = {1: [(flat, 0.0, 10), (flat, 1.0, 10)]}
        query = [(flat, 0.0, 10)]
        assert (
            _indexed(query, videos, distance=31, min_quality=50, listed_percent=0, query_percent=0)
            == {}
        )


class SegmentTests:
    def test_matched_times_become_runs_with_their_listed_span(self) -> None:
        segments = runs(
            [0.0, 1.0, 2.0, 7.0, 8.0],
            1.0,
            {0.0: [10.0], 1.0: [11.0], 2.0: [12.0], 7.0: [3.0], 8.0: [4.0]},
        )
        assert [s.as_json() for s in segments] == [
            {"query_start": 0.0, "query_end": 2.0, "listed_start": 10.0, "listed_end": 12.0},
            {"query_start": 7.0, "query_end": 8.0, "listed_start": 3.0, "listed_end": 4.0},
        ]
        assert runs([], 1.0) == []
