"""Tests for moderation.matching.index (pure numpy; no Django needed).

Hash lists here are synthetic: uniformly random bits plus planted near neighbours.

Run without Django:
    python -m pytest -p no:django --noconftest -o addopts="" -q tests/moderation/matching/
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moderation.matching.index import (
    HammingIndex,
    LayeredIndex,
    _row_popcount,
    _substring_values,
    brute_force,
    hex_to_codes,
    plan_substrings,
)

PROFILES = {256: 31, 64: 10}  # bits -> max_radius used in production (PDQ, pHash/dHash)


# ------------------------------------------------------------------------------------------
# Helpers: an oracle independent of numpy popcount, and synthetic data with planted neighbours
# ------------------------------------------------------------------------------------------


def python_oracle(codes: np.ndarray, query: np.ndarray, radius: int) -> list[tuple[int, int]]:
    """Hamming distances via Python ints: deliberately shares no code with the module."""
    q = int.from_bytes(query.tobytes(), "big")
    hits = []
    for row, code in enumerate(codes):
        d = bin(int.from_bytes(code.tobytes(), "big") ^ q).count("1")
        if d <= radius:
            hits.append((d, row))
    return [(row, d) for d, row in sorted(hits)]


def flip(code: np.ndarray, positions: np.ndarray) -> np.ndarray:
    out = code.copy()
    for b in positions:
        out[b // 8] ^= np.uint8(1 << (7 - b % 8))
    return out


def planted_list(
    seed: int, bits: int, n_random: int, distances: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Random codes plus one code at each requested distance from a random query, shuffled in."""
    rng = np.random.default_rng(seed)
    query = rng.integers(0, 256, bits // 8, dtype=np.uint8)
    random_codes = rng.integers(0, 256, (n_random, bits // 8), dtype=np.uint8)
    planted = [flip(query, rng.choice(bits, d, replace=False)) for d in distances]
    codes = np.concatenate([random_codes, np.array(planted, dtype=np.uint8).reshape(-1, bits // 8)])
    codes = codes[rng.permutation(codes.shape[0])]
    return codes, query


def random_codes(seed: int, n: int, bits: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, bits // 8), dtype=np.uint8)


bits_st = st.sampled_from([64, 256])


@st.composite
def planted_cases(
    draw: st.DrawFn, bits: int | None = None
) -> tuple[int, int, np.ndarray, np.ndarray]:
    bits = draw(bits_st) if bits is None else bits
    max_radius = PROFILES[bits]
    radius = draw(st.integers(0, max_radius))
    # Distances around and beyond the radius, so the boundary (d == radius, radius + 1) is hit.
    distances = draw(st.lists(st.integers(0, min(bits, max_radius + 3)), max_size=12))
    distances += draw(st.lists(st.sampled_from([radius, radius + 1]), max_size=3))
    n_random = draw(st.integers(0, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    codes, query = planted_list(seed, bits, n_random, distances)
    return bits, radius, codes, query


# ------------------------------------------------------------------------------------------


class HexToCodesTests:
    # Collected whatever python_classes says (pytest's default only matches "Test*").
    __test__ = True

    def test_it_parses_hex_msb_first_into_uint8_rows(self) -> None:
        codes = hex_to_codes(["00ff10a0b0c0d0e0", "FFFFFFFFFFFFFFFF"], 64)
        assert codes.dtype == np.uint8 and codes.shape == (2, 8)
        assert codes[0].tolist() == [0x00, 0xFF, 0x10, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0]
        assert codes[1].tolist() == [0xFF] * 8

    def test_it_returns_an_empty_matrix_for_no_hashes(self) -> None:
        assert hex_to_codes([], 256).shape == (0, 32)

    @pytest.mark.parametrize(
        "bad",
        ["abc", "0x" + "0" * 62, "g" * 64, "0" * 63 + "z", "0" * 31 + " " + "0" * 32, "é" * 64],
    )
    def test_it_names_the_malformed_value(self, bad: str) -> None:
        good = "0" * 64
        with pytest.raises(ValueError) as err:
            hex_to_codes([good, bad, good], 256)
        assert repr(bad) in str(err.value) and "#1" in str(err.value)

    def test_it_rejects_non_strings_and_a_bare_string(self) -> None:
        with pytest.raises(ValueError):
            hex_to_codes([b"00" * 8], 64)  # type: ignore[list-item]
        with pytest.raises(TypeError):
            hex_to_codes("00" * 8, 64)

    def test_it_rejects_widths_that_are_not_whole_bytes(self) -> None:
        with pytest.raises(ValueError):
            hex_to_codes(["0"], 4)

    @given(st.lists(st.binary(min_size=32, max_size=32), max_size=20))
    def test_it_round_trips_bytes_hex(self, raw: list[bytes]) -> None:
        codes = hex_to_codes([r.hex() for r in raw], 256)
        assert [row.tobytes() for row in codes] == raw


class BruteForceTests:
    __test__ = True

    @settings(max_examples=60, deadline=None)
    @given(planted_cases())
    def test_it_agrees_with_a_pure_python_oracle(self, case) -> None:
        _bits, radius, codes, query = case
        assert brute_force(codes, query, radius) == python_oracle(codes, query, radius)

    def test_it_sorts_by_distance_then_row(self) -> None:
        base = np.zeros(8, dtype=np.uint8)
        codes = np.array([flip(base, [0, 1]), base, flip(base, [5]), base, flip(base, [9, 10])])
        assert brute_force(codes, base, 2) == [(1, 0), (3, 0), (2, 1), (0, 2), (4, 2)]

    def test_it_counts_all_256_bits(self) -> None:
        codes = np.array([np.full(32, 0xFF, dtype=np.uint8)])
        assert brute_force(codes, np.zeros(32, dtype=np.uint8), 255) == []
        # 256 must not wrap around to 0 in a narrow accumulator.
        assert brute_force(codes, np.zeros(32, dtype=np.uint8), 256) == [(0, 256)]

    def test_it_handles_widths_that_are_not_multiples_of_64(self) -> None:
        codes, query = planted_list(3, 24, 200, [0, 1, 2, 5])
        assert brute_force(codes, query, 5) == python_oracle(codes, query, 5)

    def test_it_rejects_a_negative_radius(self) -> None:
        with pytest.raises(ValueError):
            brute_force(random_codes(0, 4, 64), np.zeros(8, dtype=np.uint8), -1)

    @given(st.integers(1, 6), st.sampled_from([np.uint8, np.uint64]), st.integers(0, 2**32 - 1))
    def test_row_popcount_sums_every_word_without_wrapping(self, words, dtype, seed) -> None:
        rng = np.random.default_rng(seed)
        x = rng.integers(0, np.iinfo(dtype).max, (50, words), dtype=dtype, endpoint=True)
        x[0] = np.iinfo(dtype).max  # all ones: 256 for a PDQ row must not wrap to 0
        expected = [sum(bin(int(v)).count("1") for v in row) for row in x]
        assert _row_popcount(x).tolist() == expected
        assert _row_popcount(x[:, 0]).tolist() == [bin(int(v)).count("1") for v in x[:, 0]]


class PlanTests:
    __test__ = True

    @pytest.mark.parametrize("n", [0, 1, 100, 10_000, 100_000, 1_000_000, 10_000_000])
    @pytest.mark.parametrize("bits", [64, 256])
    def test_it_covers_every_bit_with_bounded_tables(self, bits: int, n: int) -> None:
        widths = plan_substrings(bits, PROFILES[bits], n)
        assert sum(widths) == bits
        assert max(widths) - min(widths) <= 1 and max(widths) <= 28

    def test_it_picks_norouzi_sized_substrings_at_ten_million(self) -> None:
        # 11 x 23/24 bits with 2 flips (11 * 3 = 33 > 31); 3 x 21/22 bits with 3 flips (12 > 10).
        assert sorted(plan_substrings(256, 31, 10_000_000)) == [23] * 8 + [24] * 3
        assert sorted(plan_substrings(64, 10, 10_000_000)) == [21, 21, 22]

    def test_it_keeps_the_pigeonhole_bound_for_every_radius(self) -> None:
        for bits, max_radius in PROFILES.items():
            for n in (10, 10**5, 10**7):
                m = len(plan_substrings(bits, max_radius, n))
                for r in range(max_radius + 1):
                    assert m * (r // m + 1) > r

    @given(
        st.integers(1, 4).map(lambda b: b * 64),
        st.data(),
    )
    def test_substring_extraction_matches_python_ints(self, bits: int, data: st.DataObject) -> None:
        width = data.draw(st.integers(1, 28))
        start = data.draw(st.integers(0, bits - width))
        seed = data.draw(st.integers(0, 2**32 - 1))
        codes = random_codes(seed, 20, bits)
        got = _substring_values(codes, start, width)
        for code, value in zip(codes, got, strict=True):
            as_int = int.from_bytes(code.tobytes(), "big")
            assert int(value) == (as_int >> (bits - start - width)) & ((1 << width) - 1)


class HammingIndexTests:
    __test__ = True

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(planted_cases())
    def test_it_finds_exactly_what_brute_force_finds_on_the_flat_path(self, case) -> None:
        bits, radius, codes, query = case
        index = HammingIndex.build(codes, bits=bits, max_radius=PROFILES[bits])
        assert not index.uses_mih
        assert index.search(query, radius) == brute_force(codes, query, radius)

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(planted_cases())
    def test_it_finds_exactly_what_brute_force_finds_with_multi_index_hashing(self, case) -> None:
        bits, radius, codes, query = case
        index = HammingIndex.build(codes, bits=bits, max_radius=PROFILES[bits], min_mih_size=0)
        assert index.uses_mih
        assert index.search(query, radius) == brute_force(codes, query, radius)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(planted_cases(), st.data())
    def test_it_is_exact_for_any_substring_count(self, case, data: st.DataObject) -> None:
        # Explicit substring counts exercise 0, 1, 2 and 3 flips per substring (widths <= 20
        # keep the bucket directory small enough for many examples).
        bits, radius, codes, query = case
        m = data.draw(st.integers(math.ceil(bits / 20), min(bits, 40)))
        index = HammingIndex.build(
            codes, bits=bits, max_radius=PROFILES[bits], min_mih_size=0, substrings=m
        )
        assert len(index.substring_widths) == m
        assert index.search(query, radius) == brute_force(codes, query, radius)

    @pytest.mark.parametrize("bits", [64, 256])
    def test_it_is_exact_with_the_ten_million_plan(self, bits: int) -> None:
        # The production plan (11 x 23/24 for PDQ, 3 x 21/22 for 64-bit), on small data.
        m = len(plan_substrings(bits, PROFILES[bits], 10_000_000))
        distances = list(range(PROFILES[bits] + 3)) * 3
        codes, query = planted_list(11, bits, 3000, distances)
        index = HammingIndex.build(
            codes, bits=bits, max_radius=PROFILES[bits], min_mih_size=0, substrings=m
        )
        for radius in range(PROFILES[bits] + 1):
            assert index.search(query, radius) == brute_force(codes, query, radius)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(bits_st, st.integers(0, 2**32 - 1), st.booleans())
    def test_search_many_equals_search_per_query(self, bits: int, seed: int, mih: bool) -> None:
        rng = np.random.default_rng(seed)
        codes = random_codes(seed, 300, bits)
        # Half the queries are near-copies of listed codes, half are random.
        queries = np.concatenate(
            [
                np.array(
                    [
                        flip(c, rng.choice(bits, rng.integers(0, 12), replace=False))
                        for c in codes[:10]
                    ]
                ),
                random_codes(seed + 1, 10, bits),
            ]
        )
        index = HammingIndex.build(
            codes, bits=bits, max_radius=PROFILES[bits], min_mih_size=0 if mih else 10**9
        )
        radius = int(rng.integers(0, PROFILES[bits] + 1))
        expected = [brute_force(codes, q, radius) for q in queries]
        assert index.search_many(queries, radius) == expected
        assert index.search_many([q.tobytes().hex() for q in queries], radius) == expected

    def test_search_many_batches_large_query_sets(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("moderation.matching.index._BATCH_PROBES", 1)  # one query per batch
        codes, query = planted_list(5, 64, 500, [0, 3, 7, 10])
        index = HammingIndex.build(codes, bits=64, max_radius=10, min_mih_size=0)
        queries = np.stack([query, query, codes[0]])
        assert index.search_many(queries, 10) == [brute_force(codes, q, 10) for q in queries]

    def test_it_reports_duplicate_codes_at_every_row(self) -> None:
        codes = np.repeat(random_codes(1, 1, 256), 5, axis=0)
        for min_size in (0, 10**9):
            index = HammingIndex.build(codes, bits=256, max_radius=31, min_mih_size=min_size)
            assert index.search(codes[0], 0) == [(row, 0) for row in range(5)]

    def test_it_accepts_arrays_bytes_and_hex_queries(self) -> None:
        codes, query = planted_list(2, 256, 200, [0, 4, 31])
        index = HammingIndex.build(codes, bits=256, max_radius=31, min_mih_size=0)
        expected = brute_force(codes, query, 31)
        assert len(expected) >= 3
        assert index.search(query, 31) == expected
        assert index.search(query.tobytes(), 31) == expected
        assert index.search(query.tobytes().hex().upper(), 31) == expected

    def test_it_keeps_its_own_copy_of_the_codes(self) -> None:
        codes, query = planted_list(4, 64, 100, [0])
        index = HammingIndex.build(codes, bits=64, max_radius=10, min_mih_size=0)
        expected = index.search(query, 10)
        codes[:] = 0
        assert index.search(query, 10) == expected

    @pytest.mark.parametrize("min_size", [0, 10**9])
    def test_it_rejects_a_radius_above_max_radius(self, min_size: int) -> None:
        index = HammingIndex.build(
            random_codes(0, 50, 64), bits=64, max_radius=10, min_mih_size=min_size
        )
        with pytest.raises(ValueError, match="max_radius"):
            index.search(np.zeros(8, dtype=np.uint8), 11)
        with pytest.raises(ValueError, match="max_radius"):
            index.search_many(np.zeros((1, 8), dtype=np.uint8), 11)
        with pytest.raises(ValueError):
            index.search(np.zeros(8, dtype=np.uint8), -1)

    def test_it_rejects_malformed_queries(self) -> None:
        index = HammingIndex.build(random_codes(0, 50, 64), bits=64, max_radius=10)
        with pytest.raises(ValueError, match="'xyz'"):
            index.search("xyz", 3)
        with pytest.raises(ValueError, match="'zz00000000000000'"):
            index.search("zz00000000000000", 3)
        with pytest.raises(ValueError):
            index.search(b"\x00" * 7, 3)
        with pytest.raises(ValueError):
            index.search(np.zeros(32, dtype=np.uint8), 3)  # a PDQ query on a 64-bit index
        with pytest.raises(ValueError):
            index.search(np.zeros(8, dtype=np.int64), 3)

    def test_it_rejects_bad_build_arguments(self) -> None:
        with pytest.raises(ValueError):
            HammingIndex.build(random_codes(0, 5, 64), bits=256, max_radius=31)  # width mismatch
        with pytest.raises(ValueError):
            HammingIndex.build(random_codes(0, 5, 64), bits=64, max_radius=64)
        with pytest.raises(ValueError):
            HammingIndex.build(random_codes(0, 5, 64), bits=64, max_radius=10, substrings=2)

    @pytest.mark.parametrize("bits", [64, 256])
    @pytest.mark.parametrize("min_size", [0, 10**9])
    def test_an_empty_index_returns_nothing(self, bits: int, min_size: int) -> None:
        index = HammingIndex.build(
            np.zeros((0, bits // 8), dtype=np.uint8),
            bits=bits,
            max_radius=PROFILES[bits],
            min_mih_size=min_size,
        )
        assert index.size == 0
        query = np.zeros(bits // 8, dtype=np.uint8)
        assert index.search(query, PROFILES[bits]) == []
        assert index.search_many(np.stack([query, query]), 3) == [[], []]

    def test_it_falls_back_to_brute_force_below_the_threshold(self) -> None:
        small = HammingIndex.build(
            random_codes(0, 99, 64), bits=64, max_radius=10, min_mih_size=100
        )
        large = HammingIndex.build(
            random_codes(0, 100, 64), bits=64, max_radius=10, min_mih_size=100
        )
        assert not small.uses_mih and small.nbytes() == 99 * 8
        assert large.uses_mih and large.nbytes() > 100 * 8


class PersistenceTests:
    __test__ = True

    @pytest.mark.parametrize("bits", [64, 256])
    @pytest.mark.parametrize("min_size", [0, 10**9])
    @pytest.mark.parametrize("mmap", [True, False])
    def test_a_saved_index_loads_with_identical_results(
        self, tmp_path: Path, bits: int, min_size: int, mmap: bool
    ) -> None:
        codes, query = planted_list(8, bits, 2000, list(range(PROFILES[bits] + 2)))
        index = HammingIndex.build(
            codes, bits=bits, max_radius=PROFILES[bits], min_mih_size=min_size
        )
        index.save(tmp_path / "idx")
        loaded = HammingIndex.load(tmp_path / "idx", mmap=mmap)
        assert (loaded.bits, loaded.max_radius) == (bits, PROFILES[bits])
        assert loaded.size == codes.shape[0]
        assert loaded.uses_mih == index.uses_mih
        assert loaded.substring_widths == index.substring_widths
        assert loaded.nbytes() == index.nbytes()
        assert isinstance(loaded.codes, np.memmap) == mmap
        queries = np.concatenate([query[None, :], codes[:20]])
        for radius in (0, PROFILES[bits] // 2, PROFILES[bits]):
            expected = [brute_force(codes, q, radius) for q in queries]
            assert [loaded.search(q, radius) for q in queries] == expected
            assert loaded.search_many(queries, radius) == expected
        # Only the final directory is left behind: the temporary one was renamed.
        assert sorted(os.listdir(tmp_path)) == ["idx"]

    def test_memory_mapped_arrays_are_read_only(self, tmp_path: Path) -> None:
        index = HammingIndex.build(random_codes(0, 500, 64), bits=64, max_radius=10, min_mih_size=0)
        index.save(tmp_path / "idx")
        loaded = HammingIndex.load(tmp_path / "idx")
        with pytest.raises(ValueError):
            loaded.codes[0, 0] = 1

    def test_it_refuses_to_overwrite_unless_asked(self, tmp_path: Path) -> None:
        first = HammingIndex.build(random_codes(0, 50, 64), bits=64, max_radius=10)
        second = HammingIndex.build(random_codes(1, 70, 64), bits=64, max_radius=10, min_mih_size=0)
        first.save(tmp_path / "idx")
        with pytest.raises(FileExistsError):
            second.save(tmp_path / "idx")
        assert HammingIndex.load(tmp_path / "idx").size == 50
        second.save(tmp_path / "idx", overwrite=True)
        reloaded = HammingIndex.load(tmp_path / "idx")
        assert reloaded.size == 70 and reloaded.uses_mih
        assert sorted(os.listdir(tmp_path)) == ["idx"]

    def test_an_empty_index_round_trips(self, tmp_path: Path) -> None:
        index = HammingIndex.build(
            np.zeros((0, 32), dtype=np.uint8), bits=256, max_radius=31, min_mih_size=0
        )
        index.save(tmp_path / "idx")
        assert HammingIndex.load(tmp_path / "idx").search("0" * 64, 31) == []

    def test_it_rejects_a_directory_that_is_not_an_index(self, tmp_path: Path) -> None:
        (tmp_path / "meta.json").write_text('{"format": "something-else"}')
        with pytest.raises(ValueError):
            HammingIndex.load(tmp_path)


# ------------------------------------------------------------------------------------------
# Real-shaped lists: families of near-duplicates and low-entropy hashes (issue 15 part 7)
# ------------------------------------------------------------------------------------------


def clustered_list(seed: int, bits: int, n_uniform: int = 300) -> np.ndarray:
    """Families (a random centre, members 0..bits/5 bits away), low-entropy codes (a repeated
    byte with a few flips, and sparse codes), and uniform codes, shuffled."""
    rng = np.random.default_rng(seed)
    nbytes = bits // 8
    spread = bits * 48 // 256
    rows = []
    for _ in range(12):
        centre = rng.integers(0, 256, nbytes, dtype=np.uint8)
        for _ in range(int(rng.integers(5, 120))):
            rows.append(flip(centre, rng.choice(bits, int(rng.integers(0, spread + 1)), False)))
    for pattern in (0x00, 0xF8, 0xAA):
        base = np.full(nbytes, pattern, dtype=np.uint8)
        for _ in range(40):
            rows.append(flip(base, rng.choice(bits, int(rng.integers(0, bits // 16)), False)))
    rows.extend(rng.integers(0, 256, (n_uniform, nbytes), dtype=np.uint8))
    codes = np.array(rows, dtype=np.uint8)
    return codes[rng.permutation(codes.shape[0])]


class DenseSetTests:
    __test__ = True

    @pytest.mark.parametrize("bits", [64, 256])
    @pytest.mark.parametrize("cap", [2, 8, 32])
    def test_it_is_exact_on_clustered_lists_with_crowded_buckets_set_aside(
        self, bits: int, cap: int
    ) -> None:
        codes = clustered_list(bits + cap, bits)
        radius = PROFILES[bits]
        index = HammingIndex.build(
            codes, bits=bits, max_radius=radius, min_mih_size=0, bucket_cap=cap
        )
        assert index.dense_size > 0 and index.pivot_count > 0
        rng = np.random.default_rng(bits * cap)
        queries = [
            flip(codes[i], rng.choice(bits, int(rng.integers(0, radius + 8)), False))
            for i in rng.integers(0, codes.shape[0], 60)
        ]
        queries += list(rng.integers(0, 256, (10, bits // 8), dtype=np.uint8))
        for r in (0, radius // 2, radius):
            many = index.search_many(np.array(queries), r)
            for q, got in zip(queries, many, strict=True):
                assert got == brute_force(codes, q, r) == index.search(q, r)

    def test_buckets_stay_within_the_cap_after_the_crowd_is_set_aside(self) -> None:
        codes = clustered_list(11, 256, n_uniform=2000)
        index = HammingIndex.build(codes, bits=256, max_radius=31, min_mih_size=0, bucket_cap=8)
        largest = int(np.diff(np.asarray(index._offsets, dtype=np.int64)).max())
        uncapped = HammingIndex.build(
            codes, bits=256, max_radius=31, min_mih_size=0, bucket_cap=1 << 40
        )
        assert uncapped.dense_size == 0
        assert largest < int(np.diff(np.asarray(uncapped._offsets, dtype=np.int64)).max())
        q = codes[0]
        assert sum(index.probe_cost(q, 31)) <= sum(uncapped.probe_cost(q, 31))

    def test_uniform_codes_have_no_dense_set_at_the_default_cap(self) -> None:
        index = HammingIndex.build(
            random_codes(3, 20_000, 256), bits=256, max_radius=31, min_mih_size=0
        )
        assert index.dense_size == 0

    def test_a_saved_dense_set_loads_with_identical_results(self, tmp_path: Path) -> None:
        codes = clustered_list(12, 256)
        index = HammingIndex.build(codes, bits=256, max_radius=31, min_mih_size=0, bucket_cap=4)
        index.save(tmp_path / "ix")
        loaded = HammingIndex.load(tmp_path / "ix", mmap=True)
        assert (loaded.dense_size, loaded.pivot_count) == (index.dense_size, index.pivot_count)
        for q in codes[:40]:
            assert loaded.search(q, 31) == index.search(q, 31) == brute_force(codes, q, 31)

    def test_a_damaged_dense_set_is_refused(self, tmp_path: Path) -> None:
        codes = clustered_list(13, 256)
        HammingIndex.build(codes, bits=256, max_radius=31, min_mih_size=0, bucket_cap=4).save(
            tmp_path / "ix"
        )
        np.save(tmp_path / "ix" / "pivots.npy", np.zeros((1, 32), dtype=np.uint8))
        with pytest.raises(ValueError, match="dense-set shapes"):
            HammingIndex.load(tmp_path / "ix")


class LayeredIndexTests:
    __test__ = True

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_base_plus_delta_minus_tombstones_equals_brute_force_over_the_live_set(
        self, seed: int
    ) -> None:
        rng = np.random.default_rng(seed)
        base_codes = clustered_list(seed, 256)
        base_ids = np.arange(10, 10 + 3 * base_codes.shape[0], 3, dtype=np.int64)
        base = HammingIndex.build(base_codes, bits=256, max_radius=31, min_mih_size=0, bucket_cap=4)
        delta_codes = np.array(
            [flip(base_codes[i], rng.choice(256, 5, False)) for i in range(0, 60, 3)]
        )
        delta_ids = np.arange(10**6, 10**6 + delta_codes.shape[0], dtype=np.int64)
        removed = base_ids[::7]
        # An id in the delta hides its base row (the entry changed): take one over.
        delta_ids[0] = base_ids[1]
        layered = LayeredIndex(
            base,
            base_ids,
            delta_codes=delta_codes,
            delta_ids=delta_ids,
            removed_ids=np.append(removed, 999_999_999),
        )
        live_codes, live_ids = layered.live()
        assert np.all(np.diff(live_ids) > 0)
        assert layered.size == live_ids.size
        queries = list(base_codes[:50]) + list(delta_codes)
        for q in queries:
            expect = sorted(
                ((int(live_ids[r]), d) for r, d in brute_force(live_codes, q, 31)),
                key=lambda p: (p[1], p[0]),
            )
            assert layered.search(q, 31) == expect
        for i in removed[:5]:
            row = int(np.flatnonzero(base_ids == i)[0])
            assert all(hit[0] != i for hit in layered.search(base_codes[row], 0))
        # A batch answers each query as alone, in order (query numbers kept across chunks).
        batch = np.array(queries)
        assert layered.search_many(batch, 31) == [layered.search(q, 31) for q in queries]

    def test_a_flat_base_gives_the_same_answers_as_a_multi_index_one(self) -> None:
        codes = clustered_list(4, 256)
        ids = np.arange(codes.shape[0], dtype=np.int64) * 2
        options = {"delta_codes": codes[:7] ^ 1, "delta_ids": ids[:7] + 1, "removed_ids": ids[::5]}
        flat = LayeredIndex(HammingIndex.build(codes, bits=256, max_radius=31), ids, **options)
        mih = LayeredIndex(
            HammingIndex.build(codes, bits=256, max_radius=31, min_mih_size=0), ids, **options
        )
        assert not flat.base.uses_mih and mih.base.uses_mih
        queries = codes[:40]
        assert flat.search_many(queries, 31) == mih.search_many(queries, 31)
        assert any(len(hits) > 1 for hits in flat.search_many(queries, 31))

    def test_it_rejects_mismatched_arrays(self) -> None:
        base = HammingIndex.build(random_codes(1, 50, 256), bits=256, max_radius=31)
        with pytest.raises(ValueError, match="base_ids"):
            LayeredIndex(base, np.arange(49))
        with pytest.raises(ValueError, match="differ in length"):
            LayeredIndex(
                base, np.arange(50), delta_codes=random_codes(2, 3, 256), delta_ids=np.arange(2)
            )
