"""HMA's signal types: which values they accept, how two values compare, which are enabled."""

from __future__ import annotations

from typing import Any

import pytest

from hma.checks import check_signal_types
from hma.errors import InvalidSignal, UnknownSignalType
from hma.signal_types import (
    SIGNAL_TYPES,
    signal_type_get,
    signal_types_for,
    vpdq_percentages,
)
from moderation.matching.vpdq import brute_force_videos
from moderation.media.video import FrameHash
from tests.hma.factories import flip, md5, pdq, vpdq


class ValidationTests:
    @pytest.mark.parametrize(
        ("name", "raw", "normal"),
        [
            ("pdq", f"  {pdq(1).upper()} ", pdq(1)),
            ("video_md5", md5(1).upper(), md5(1)),
            ("sha1", "A" * 40, "a" * 40),
            ("phash", "0123456789ABCDEF", "0123456789abcdef"),
        ],
    )
    def test_hex_values_are_trimmed_and_lower_cased(self, name: str, raw: str, normal: str) -> None:
        assert SIGNAL_TYPES[name].validate(raw) == normal

    @pytest.mark.parametrize(
        ("name", "raw"),
        [
            ("pdq", "a" * 63),
            ("pdq", "a" * 65),
            ("pdq", "g" * 64),
            ("md5", ""),
            ("sha256", None),
            ("dhash", "0x12345678901234"),
            ("vpdq", "{}"),
            ("vpdq", "[1, 2]"),
            ("vpdq", '["' + pdq(1) + ',101,0"]'),
            ("vpdq", '["' + pdq(1) + ',50,-1"]'),
            ("vpdq", '["' + pdq(1) + ',50,nan"]'),
            ("vpdq", '["' + pdq(1) + ',50"]'),
            ("vpdq", '["' + pdq(1) + ',50,1,2"]'),
        ],
    )
    def test_malformed_values_are_refused(self, name: str, raw: Any) -> None:
        with pytest.raises(InvalidSignal):
            SIGNAL_TYPES[name].validate(raw)

    def test_a_vpdq_value_is_normalised_to_threatexchange_compact_features(self) -> None:
        raw = f'["{pdq(1).upper()},90,0", "{pdq(2)},80,1.5"]'
        assert SIGNAL_TYPES["vpdq"].validate(raw) == vpdq([(pdq(1), 90, 0.0), (pdq(2), 80, 1.5)])

    def test_too_many_vpdq_frames_are_refused(self) -> None:
        with pytest.raises(InvalidSignal, match="more than"):
            SIGNAL_TYPES["vpdq"].validate(vpdq([(pdq(1), 90, float(n)) for n in range(7201)]))


class CompareTests:
    def test_pdq_matches_within_31_bits(self) -> None:
        st = SIGNAL_TYPES["pdq"]
        assert st.compare(pdq(1), flip(pdq(1), 31)) == [True, {"distance": 31}]
        assert st.compare(pdq(1), flip(pdq(1), 32)) == [False, {"distance": 32}]

    def test_exact_types_match_on_equality_with_no_distance(self) -> None:
        assert SIGNAL_TYPES["video_md5"].compare(md5(1), md5(1).upper()) == [True, {}]
        assert SIGNAL_TYPES["video_md5"].compare(md5(1), md5(2)) == [False, {}]

    def test_vpdq_percentages_equal_metas_brute_force_comparison(self) -> None:
        listed = [(pdq(n), 90, float(n)) for n in range(10)]
        query = [(flip(pdq(n), 20, seed=n), 90, float(n)) for n in range(8)] + [
            (pdq(100), 90, 8.0),
            (pdq(1), 10, 9.0),  # below the quality floor: not compared
        ]
        expected = brute_force_videos(
            query=[(h, t, q) for h, q, t in query],
            videos={1: [(h, t, q) for h, q, t in listed]},
            distance=31,
            min_quality=50,
            listed_percent=0,
            query_percent=0,
        )[1]

        def frames(rows: list[tuple[str, int, float]]) -> list[FrameHash]:
            return [FrameHash(n, t, q, h) for n, (h, q, t) in enumerate(rows)]

        assert vpdq_percentages(frames(query), frames(listed)) == pytest.approx(expected, abs=0.01)
        result = SIGNAL_TYPES["vpdq"].compare(vpdq(query), vpdq(listed))
        assert result[0] is (max(expected) >= 80)
        assert result[1] == pytest.approx(
            {"query_match_percent": expected[0], "compared_match_percent": expected[1]}, abs=0.01
        )


class EnabledTypesTests:
    def test_all_types_by_default_and_hmas_own_when_configured(self, settings: Any) -> None:
        assert [st.name for st in signal_types_for("photo")] == [
            "pdq",
            "photo_md5",
            "sha256",
            "sha1",
            "phash",
            "dhash",
        ]
        assert [st.name for st in signal_types_for("video")] == [
            "video_md5",
            "vpdq",
            "sha256",
            "sha1",
        ]
        settings.HMA_SIGNAL_TYPES = ["pdq", "video_md5", "vpdq"]
        assert [st.name for st in signal_types_for("video")] == ["video_md5", "vpdq"]
        with pytest.raises(UnknownSignalType):
            signal_type_get("sha256")

    def test_a_typo_in_hma_signal_types_fails_the_system_check(self, settings: Any) -> None:
        assert check_signal_types() == []
        settings.HMA_SIGNAL_TYPES = ["pdq", "pqd"]
        [error] = check_signal_types()
        assert error.id == "hma.E001" and "pqd" in error.msg
