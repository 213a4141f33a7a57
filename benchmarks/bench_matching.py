"""Benchmark: exact Hamming-radius matching (moderation.matching.index) vs same-run baselines.

For each list size and each profile -- PDQ (256 bits, radius 31) and pHash/dHash (64 bits,
radius 10) -- this script:

1. generates a seeded, uniformly random synthetic hash list (never a real one) and a query set:
   even-numbered queries have 1-3 neighbours planted in the list at random distances 0..radius,
   odd-numbered queries are uniformly random (usually no match);
2. builds a HammingIndex (build seconds, nbytes), saves it and loads it back memory-mapped, as
   workers do;
3. times every query one call at a time on the memory-mapped index (p50/p99/mean), plus the
   search_many batch throughput;
4. times the numpy brute force (XOR + np.bitwise_count, the module's oracle) and, if importable,
   faiss IndexBinaryFlat range_search on the first --baseline-queries queries, in the same process;
5. checks the index's results are identical to brute force on every query where the baseline ran
   (all queries with --quick) and exits 1 on any mismatch.

Usage:
    python benchmarks/bench_matching.py [--quick] [--sizes 1000000,10000000] [--queries 1000]
For latency figures, pin to one core: taskset -c 0 env OMP_NUM_THREADS=1 python ... (or --pin 0).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moderation.matching.index import (
    HammingIndex,
    LayeredIndex,
    brute_force,
    hex_to_codes,
    plan_substrings,
)

PROFILES = (("pdq", 256, 31), ("phash", 64, 10))

try:  # optional comparison baseline
    import faiss  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    faiss = None


def make_data(
    n: int, bits: int, radius: int, n_queries: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random codes plus queries; even queries get 1-3 planted neighbours in the list."""
    rng = np.random.default_rng(seed)
    nbytes = bits // 8
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    queries = rng.integers(0, 256, (n_queries, nbytes), dtype=np.uint8)
    if n == 0:
        return codes, queries
    for qi in range(0, n_queries, 2):
        for _ in range(int(rng.integers(1, 4))):
            d = int(rng.integers(0, radius + 1))
            planted = np.unpackbits(queries[qi])
            planted[rng.choice(bits, d, replace=False)] ^= 1
            codes[int(rng.integers(0, n))] = np.packbits(planted)
    return codes, queries


# --- clustered (real-shaped) lists -------------------------------------------------------------

#: Byte patterns of low-entropy hashes (flat or near-uniform images give near-constant PDQs).
LOW_ENTROPY_PATTERNS = (0x00, 0xFF, 0xF8, 0x0F, 0xAA, 0x55, 0xCC, 0x33)


def _flip_rows(rng: np.random.Generator, rows: np.ndarray, max_flips: int) -> np.ndarray:
    """Each row with up to ``max_flips`` random bits flipped (uniform 0..max_flips positions,
    drawn with replacement, so the distance is at most the count)."""
    bits = rows.shape[1] * 8
    out = np.empty_like(rows)
    for s in range(0, rows.shape[0], 200_000):
        chunk = rows[s : s + 200_000]
        k = chunk.shape[0]
        flips = rng.integers(0, max_flips + 1, k)
        pos = rng.integers(0, bits, (k, max(1, max_flips)))
        valid = np.arange(pos.shape[1])[None, :] < flips[:, None]
        mask = np.zeros((k, bits), dtype=bool)
        r = np.broadcast_to(np.arange(k)[:, None], pos.shape)
        mask[r[valid], pos[valid]] = True
        out[s : s + k] = chunk ^ np.packbits(mask, axis=1)
    return out


def low_entropy(rng: np.random.Generator, count: int, nbytes: int) -> np.ndarray:
    """Half: a repeated byte pattern with 0-16 bits flipped; half: 4-32 random bits set."""
    half = count // 2
    patterns = np.array(LOW_ENTROPY_PATTERNS, dtype=np.uint8)
    flat = np.repeat(patterns[rng.integers(0, patterns.size, half)][:, None], nbytes, axis=1)
    flat = _flip_rows(rng, flat, 16)
    sparse = _flip_rows(rng, np.zeros((count - half, nbytes), dtype=np.uint8), 32)
    return np.concatenate([flat, sparse])


def make_clustered(
    n: int, bits: int, radius: int, n_queries: int, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A real-shaped synthetic list and four query sets.

    List: 1 % low-entropy hashes; 60 % in families of near-duplicates (a random centre, members
    0-48 bits from it; family sizes heavy-tailed, 2 to 20,000 -- Pareto, alpha 1.1); the rest
    uniform. Queries (``n_queries`` of each kind):
      planted  random, with 1-3 neighbours planted at 0..radius (as in the uniform benchmark)
      random   uniform, usually no match
      family   a family centre (half from the 50 largest families) with 0-40 bits flipped
      flat     a low-entropy hash (what the PDQ quality gate would keep out; shown for the tail)
    """
    rng = np.random.default_rng(seed)
    nbytes = bits // 8
    spread = 48 if bits == 256 else 12  # "0-48 bits from a centre" for PDQ; scaled for 64-bit
    n_low = n // 100
    n_fam_target = int(n * 0.6)
    sizes = np.minimum(20_000, 2 + (rng.pareto(1.1, n_fam_target) * 4).astype(np.int64))
    sizes = sizes[np.cumsum(sizes) <= n_fam_target]
    n_fam = int(sizes.sum())
    centres = rng.integers(0, 256, (sizes.size, nbytes), dtype=np.uint8)
    members = _flip_rows(rng, np.repeat(centres, sizes, axis=0), spread)
    uniform = rng.integers(0, 256, (n - n_low - n_fam, nbytes), dtype=np.uint8)
    codes = np.concatenate([uniform, members, low_entropy(rng, n_low, nbytes)])
    del members, uniform
    codes = codes[rng.permutation(n)]

    planted = rng.integers(0, 256, (n_queries, nbytes), dtype=np.uint8)
    for qi in range(n_queries):
        for _ in range(int(rng.integers(1, 4))):
            near = _flip_rows(rng, planted[qi : qi + 1], int(rng.integers(0, radius + 1)))
            codes[int(rng.integers(0, n))] = near[0]
    big = np.argsort(sizes)[-50:]
    pick = np.where(
        np.arange(n_queries) % 2 == 0,
        big[rng.integers(0, big.size, n_queries)],
        rng.integers(0, sizes.size, n_queries),
    )
    queries = {
        "planted": planted,
        "random": rng.integers(0, 256, (n_queries, nbytes), dtype=np.uint8),
        "family": _flip_rows(rng, centres[pick], 40 if bits == 256 else 10),
        "flat": low_entropy(rng, n_queries, nbytes),
    }
    return codes, queries


#: CPU time of each call of the last time_each (ms): on a shared, oversubscribed machine the
#: wall time includes waiting for a core; this thread's CPU time does not.
LAST_CPU_MS: dict[int, np.ndarray] = {}


def time_each(fn: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[np.ndarray, list]:
    """Per-query wall time in ms (after one warm-up call) and the results; the per-query CPU
    time (this thread's) goes to LAST_CPU_MS[0]."""
    fn(queries[0])
    times = np.empty(len(queries))
    cpu = np.empty(len(queries))
    results = []
    for i, q in enumerate(queries):
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        res = fn(q)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
        cpu[i] = (time.thread_time_ns() - c0) / 1e6
        results.append(res)
    LAST_CPU_MS[0] = cpu
    return times, results


def stats(times: np.ndarray) -> dict[str, float]:
    if times.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan")}
    return {
        "p50": float(np.percentile(times, 50)),
        "p99": float(np.percentile(times, 99)),
        "mean": float(times.mean()),
    }


def faiss_search(index: Any, radius: int) -> Callable[[np.ndarray], list[tuple[int, int]]]:
    def run(q: np.ndarray) -> list[tuple[int, int]]:
        lims, dists, ids = index.range_search(q[None, :], radius + 1)  # faiss: strictly below
        lo, hi = int(lims[0]), int(lims[1])
        pairs = sorted(zip(dists[lo:hi].tolist(), ids[lo:hi].tolist(), strict=True))
        return [(int(i), int(d)) for d, i in pairs]

    return run


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_one(
    name: str, bits: int, radius: int, n: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    seed = args.seed + n + bits
    codes, queries = make_data(n, bits, radius, args.queries, seed)
    out: dict[str, Any] = {"profile": name, "bits": bits, "radius": radius, "n": n}

    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    kwargs = dict(args.build_kwargs)
    if "plan_for" in kwargs:  # use the substring plan the index would pick at that size
        kwargs["substrings"] = len(plan_substrings(bits, radius, kwargs.pop("plan_for")))
    if name in args.substrings:
        kwargs["substrings"] = args.substrings[name]
    built = HammingIndex.build(codes, bits=bits, max_radius=radius, **kwargs)
    out["build_s"] = time.perf_counter() - t0
    out["build_rss_delta_mb"] = rss_mb() - rss0
    out["layout"] = list(built.substring_widths) or "flat"
    out["nbytes_mb"] = built.nbytes() / 1e6
    path = workdir / f"{name}-{n}-{len(list(workdir.iterdir()))}"
    t0 = time.perf_counter()
    built.save(path)
    out["save_s"] = time.perf_counter() - t0
    del built
    gc.collect()
    t0 = time.perf_counter()
    index = HammingIndex.load(path, mmap=True)
    out["load_s"] = time.perf_counter() - t0

    # Timed: one call per query on the memory-mapped index (what a worker does).
    search = index.search
    times, results = time_each(lambda q: search(q, radius), queries)
    out["index_ms"] = stats(times)
    t0 = time.perf_counter()
    many = index.search_many(queries, radius)
    out["search_many_ms_per_query"] = (time.perf_counter() - t0) * 1e3 / len(queries)
    mismatches = int(sum(a != b for a, b in zip(many, results, strict=True)))

    nb = len(queries) if args.quick else min(len(queries), args.baseline_queries)
    sub = queries[:nb]
    bf_times, bf_results = time_each(lambda q: brute_force(codes, q, radius), sub)
    out["baseline_queries"] = nb
    out["numpy_bf_ms"] = stats(bf_times)
    mismatches += int(sum(a != b for a, b in zip(results[:nb], bf_results, strict=True)))
    out["matches_found"] = int(sum(len(r) for r in bf_results))
    if faiss is not None and n > 0:
        faiss.omp_set_num_threads(1)
        flat = faiss.IndexBinaryFlat(bits)
        flat.add(codes)
        f_times, f_results = time_each(faiss_search(flat, radius), sub)
        out["faiss_flat_ms"] = stats(f_times)
        out["faiss_agrees"] = f_results == bf_results
        del flat
    out["mismatches"] = mismatches
    p50 = out["index_ms"]["p50"]
    out["speedup_p50_vs_numpy_bf"] = out["numpy_bf_ms"]["p50"] / p50
    if "faiss_flat_ms" in out:
        out["speedup_p50_vs_faiss_flat"] = out["faiss_flat_ms"]["p50"] / p50
    return out


def _load_or_make(
    bits: int, radius: int, n: int, args: argparse.Namespace, workdir: Path
) -> tuple[np.ndarray, dict[str, np.ndarray], Path]:
    """The clustered data set, generated once and kept in ``workdir`` for ``--reuse``."""
    home = workdir / f"clustered-{bits}-{n}-{args.queries}-{args.seed}"
    data = home / "data.npz"
    if args.reuse and data.exists():
        with np.load(data) as z:
            return z["codes"], {k[2:]: z[k] for k in z.files if k.startswith("q_")}, home
    home.mkdir(parents=True, exist_ok=True)
    codes, queries = make_clustered(n, bits, radius, args.queries, args.seed + n + bits)
    np.savez(data, codes=codes, **{f"q_{k}": v for k, v in queries.items()})
    return codes, queries, home


def bench_clustered(
    name: str, bits: int, radius: int, n: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Clustered list: per query kind index vs brute force; dihedral; optionally the old
    (uncapped) layout on the same data."""
    t0 = time.perf_counter()
    codes, queries, home = _load_or_make(bits, radius, n, args, workdir)
    out: dict[str, Any] = {"profile": name, "bits": bits, "radius": radius, "n": n}
    out["data_s"] = time.perf_counter() - t0
    path = home / "index"
    if not (args.reuse and (path / "meta.json").exists()):
        gc.collect()
        t0 = time.perf_counter()
        built = HammingIndex.build(codes, bits=bits, max_radius=radius)
        out["build_s"] = time.perf_counter() - t0
        built.save(path, overwrite=True)
        del built
        gc.collect()
    index = HammingIndex.load(path, mmap=True)
    out["layout"] = list(index.substring_widths) or "flat"
    out["nbytes_mb"] = index.nbytes() / 1e6
    out["dense_rows"] = index.dense_size
    out["pivots"] = index.pivot_count
    out["kinds"] = {}
    mismatches = 0
    nb = min(args.queries, args.baseline_queries)
    by_kind: dict[str, list] = {}
    for _ in range(2 if args.warm else 0):  # fault the memory-mapped pages in first
        for qs in queries.values():
            for q in qs:
                index.search(q, radius)
    for kind, qs in queries.items():
        times, results = time_each(lambda q: index.search(q, radius), qs)
        cpu = LAST_CPU_MS[0]
        by_kind[kind] = results
        bf_times, bf_results = time_each(lambda q: brute_force(codes, q, radius), qs[:nb])
        bf_cpu = LAST_CPU_MS[0]
        bad = int(sum(a != b for a, b in zip(results[:nb], bf_results, strict=True)))
        mismatches += bad
        cost = np.array([sum(index.probe_cost(q, radius)) for q in qs])
        out["kinds"][kind] = {
            "index_ms": stats(times),
            "numpy_bf_ms": stats(bf_times),
            "index_cpu_ms": stats(cpu),
            "numpy_bf_cpu_ms": stats(bf_cpu),
            "checked": nb,
            "matches": int(sum(len(r) for r in bf_results)),
            "mismatches": bad,
            "verified_p50": float(np.percentile(cost, 50)),
            "verified_p99": float(np.percentile(cost, 99)),
            "verified_max": int(cost.max()),
        }
    # Dihedral: the media's hash and its 7 other forms, one search_many call of 8 probes. The
    # other forms of a real image are unrelated hashes, so 7 uniform ones stand in for them.
    probes = [
        np.concatenate(
            [queries["family"][i : i + 1], queries["random"][(i * 7) % args.queries :][:7]]
        )
        for i in range(args.queries)
    ]
    probes = [p for p in probes if p.shape[0] == 8]
    d_times, d_results = time_each(lambda q: index.search_many(q, radius), probes)
    out["dihedral_cpu_ms"] = stats(LAST_CPU_MS[0])
    bf8 = [[brute_force(codes, row, radius) for row in p] for p in probes[: max(1, nb // 8)]]
    mismatches += int(sum(a != b for a, b in zip(d_results, bf8, strict=False)))
    out["dihedral_ms"] = stats(d_times)
    out["dihedral_bf_ms_est"] = 8 * out["kinds"]["random"]["numpy_bf_ms"]["p50"]
    out["mismatches"] = mismatches
    if args.compare_uncapped:
        gc.collect()
        old = HammingIndex.build(codes, bits=bits, max_radius=radius, bucket_cap=2**62)
        out["uncapped"] = {}
        for kind, qs in queries.items():
            times, results = time_each(lambda q: old.search(q, radius), qs)
            mismatches += int(sum(a != b for a, b in zip(results, by_kind[kind], strict=True)))
            cost = np.array([sum(old.probe_cost(q, radius)) for q in qs])
            out["uncapped"][kind] = {
                **stats(times),
                "verified_p99": float(np.percentile(cost, 99)),
                "verified_max": int(cost.max()),
            }
        out["uncapped_nbytes_mb"] = old.nbytes() / 1e6
        out["mismatches"] = mismatches
        del old
    return out


def _merge_child(path: str, layered_args: tuple, radius: int) -> None:
    """The background merge (a Celery worker in production): live set -> a new base, saved."""
    base_path, delta_codes, delta_ids, removed = layered_args
    base = HammingIndex.load(base_path, mmap=True)
    layered = LayeredIndex(
        base,
        np.arange(base.size, dtype=np.int64),
        delta_codes=delta_codes,
        delta_ids=delta_ids,
        removed_ids=removed,
    )
    codes, _ = layered.live()
    HammingIndex.build(codes, bits=base.bits, max_radius=radius).save(path, overwrite=True)


def bench_delta(
    name: str, bits: int, radius: int, n: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Part 8: a delta of ``--delta`` hashes on the clustered list, made matchable without a
    rebuild, then lookups timed while a merged base is built in another process."""
    _, queries, home = _load_or_make(bits, radius, n, args, workdir)
    base = HammingIndex.load(home / "index", mmap=True)
    base_ids = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(args.seed + 8)
    out: dict[str, Any] = {"profile": name, "n": n, "delta": args.delta, "kind": "delta"}
    # New hashes as they arrive from a fetch: hex strings, half near the family queries' centres
    # (so lookups find them), half uniform. Withdrawals: the base neighbours of 50 planted queries.
    near = _flip_rows(rng, queries["family"][rng.integers(0, args.queries, args.delta // 2)], 20)
    fresh = np.concatenate(
        [near, rng.integers(0, 256, (args.delta - near.shape[0], bits // 8), dtype=np.uint8)]
    )
    hexes = [row.tobytes().hex() for row in fresh]
    withdrawn = sorted({row for q in queries["planted"][:50] for row, _ in base.search(q, radius)})
    out["tombstones"] = len(withdrawn)
    base.search(queries["random"][0], radius)  # warm
    t0 = time.perf_counter()
    delta_codes = hex_to_codes(hexes, bits)
    delta_ids = np.arange(n, n + args.delta, dtype=np.int64)
    removed = np.asarray(withdrawn, dtype=np.int64)
    layered = LayeredIndex(
        base, base_ids, delta_codes=delta_codes, delta_ids=delta_ids, removed_ids=removed
    )
    out["matchable_s"] = time.perf_counter() - t0

    # Exact: brute force over the live set (base minus tombstones, plus the delta).
    live_codes, live_ids = layered.live()
    probe = np.concatenate(
        [queries["planted"][:50], queries["family"][:50], fresh[:: max(1, args.delta // 50)]]
    )
    nb = min(len(probe), args.baseline_queries)
    mismatches = 0
    bf_times = []
    for q in probe[:nb]:
        t = time.perf_counter()
        expect = [(int(live_ids[r]), d) for r, d in brute_force(live_codes, q, radius)]
        bf_times.append((time.perf_counter() - t) * 1e3)
        mismatches += layered.search(q, radius) != sorted(expect, key=lambda p: (p[1], p[0]))
    out["numpy_bf_ms"] = stats(np.array(bf_times))
    del live_codes

    mixed = np.concatenate([queries[k] for k in ("planted", "random", "family")])
    before, _ = time_each(lambda q: layered.search(q, radius), mixed)
    out["before_merge_ms"] = stats(before)

    import multiprocessing as mp

    merged_path = home / "merged"
    # spawn, not fork: the merge runs in another process in production (a Celery worker), and
    # a forked child would charge this process's lookups with copy-on-write page faults.
    ctx = mp.get_context("spawn")
    child = ctx.Process(
        target=_merge_child,
        args=(str(merged_path), (str(home / "index"), delta_codes, delta_ids, removed), radius),
    )
    t0 = time.perf_counter()
    child.start()
    during: list[float] = []
    during_cpu: list[float] = []  # this thread's CPU: the lookup's work without waiting for a core
    i = 0
    while child.is_alive():
        q = mixed[i % len(mixed)]
        c = time.thread_time_ns()
        t = time.perf_counter_ns()
        layered.search(q, radius)
        during.append((time.perf_counter_ns() - t) / 1e6)
        during_cpu.append((time.thread_time_ns() - c) / 1e6)
        i += 1
    child.join()
    out["merge_s"] = time.perf_counter() - t0
    out["merge_exit"] = child.exitcode
    out["during_merge_ms"] = stats(np.array(during))
    out["during_merge_lookups"] = len(during)
    out["during_merge_cpu_ms"] = stats(np.array(during_cpu))
    out["load_average"] = os.getloadavg()
    merged = HammingIndex.load(merged_path, mmap=True)
    _, merged_ids = layered.live()
    after = LayeredIndex(merged, merged_ids)
    mismatches += sum(after.search(q, radius) != layered.search(q, radius) for q in probe)
    out["mismatches"] = int(mismatches)
    return out


def print_delta(r: dict[str, Any]) -> None:
    b, d, bf = r["before_merge_ms"], r["during_merge_ms"], r["numpy_bf_ms"]
    c = r["during_merge_cpu_ms"]
    print(
        f"   DELTA {r['delta']:,} new + {r['tombstones']} withdrawn on n={r['n']:,}: matchable in "
        f"{r['matchable_s']:.3f} s | lookups p50/p99 {b['p50']:.3f}/{b['p99']:.3f} ms, during "
        f"the {r['merge_s']:.0f} s merge {d['p50']:.3f}/{d['p99']:.3f} ms "
        f"({r['during_merge_lookups']} lookups; CPU p50/p99 {c['p50']:.3f}/{c['p99']:.3f} ms) | "
        f"numpy bf over the live set p50 "
        f"{bf['p50']:.1f} ms ({bf['p50'] / d['p50']:.0f}x) | merge exit {r['merge_exit']}, "
        f"mismatches={r['mismatches']} | load average {r['load_average'][0]:.2f}",
        flush=True,
    )


def print_clustered(r: dict[str, Any]) -> None:
    print(
        f"{r['profile']:5} CLUSTERED n={r['n']:>10,} layout={r['layout']} "
        f"build={r.get('build_s', float('nan')):.1f}s nbytes={r['nbytes_mb']:.0f}MB "
        f"dense rows={r['dense_rows']:,} pivots={r['pivots']}",
        flush=True,
    )
    for kind, k in r["kinds"].items():
        ix, bf = k["index_ms"], k["numpy_bf_ms"]
        line = (
            f"   {kind:8} index p50={ix['p50']:.3f} p99={ix['p99']:.3f} mean={ix['mean']:.3f} ms"
            f" | numpy bf p50={bf['p50']:.2f} ms ({bf['p50'] / ix['p50']:.0f}x at p50, "
            f"{bf['p50'] / ix['p99']:.0f}x bf p50 / index p99) | rows verified p50/p99/max "
            f"{k['verified_p50']:,.0f}/{k['verified_p99']:,.0f}/{k['verified_max']:,}"
            f" | {k['checked']} checked, {k['matches']} matches, mismatches={k['mismatches']}"
            f" | CPU time: index p50={k['index_cpu_ms']['p50']:.3f} "
            f"p99={k['index_cpu_ms']['p99']:.3f} ms, numpy bf p50="
            f"{k['numpy_bf_cpu_ms']['p50']:.1f} ms "
            f"({k['numpy_bf_cpu_ms']['p50'] / k['index_cpu_ms']['p50']:.0f}x)"
        )
        if "uncapped" in r:
            u = r["uncapped"][kind]
            line += (
                f" | uncapped (old layout) p50={u['p50']:.3f} p99={u['p99']:.3f} ms, verified "
                f"p99/max {u['verified_p99']:,.0f}/{u['verified_max']:,}"
            )
        print(line, flush=True)
    d, dc = r["dihedral_ms"], r["dihedral_cpu_ms"]
    print(
        f"   dihedral (8 probes) p50={d['p50']:.3f} p99={d['p99']:.3f} ms | 8 x numpy bf p50 "
        f"~{r['dihedral_bf_ms_est']:.0f} ms ({r['dihedral_bf_ms_est'] / d['p50']:.0f}x) | CPU "
        f"time p50={dc['p50']:.3f} p99={dc['p99']:.3f} ms",
        flush=True,
    )
    if "uncapped_nbytes_mb" in r:
        print(f"   uncapped index {r['uncapped_nbytes_mb']:.0f} MB", flush=True)


def print_row(r: dict[str, Any]) -> None:
    ix, bf = r["index_ms"], r["numpy_bf_ms"]
    line = (
        f"{r['profile']:5} n={r['n']:>10,} layout={r['layout']} build={r['build_s']:.2f}s "
        f"nbytes={r['nbytes_mb']:.0f}MB | index p50={ix['p50']:.3f} p99={ix['p99']:.3f} "
        f"mean={ix['mean']:.3f} ms, batch={r['search_many_ms_per_query']:.3f} ms/q | "
        f"numpy bf p50={bf['p50']:.3f} ms ({r['speedup_p50_vs_numpy_bf']:.1f}x)"
    )
    if "faiss_flat_ms" in r:
        ff = r["faiss_flat_ms"]
        line += (
            f" | faiss flat p50={ff['p50']:.3f} p99={ff['p99']:.3f} ms "
            f"({r['speedup_p50_vs_faiss_flat']:.1f}x)"
        )
    line += f" | checked {r['baseline_queries']} q, {r['matches_found']} matches, "
    line += f"mismatches={r['mismatches']}"
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, correctness only")
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated list sizes")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--baseline-queries", type=int, default=200, help="queries timed on the slow baselines"
    )
    parser.add_argument("--profiles", default="pdq,phash", help="subset of: pdq,phash")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--substrings", default="", help="override MIH substring counts, e.g. pdq=12,phash=3"
    )
    parser.add_argument("--pin", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--workdir", type=Path, default=None, help="where to save indexes")
    parser.add_argument(
        "--lists",
        default="uniform",
        help="comma-separated: uniform, clustered (real-shaped: families + low-entropy hashes)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep clustered data and indexes in --workdir and reuse them on the next run",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="clustered: run every query twice before timing (page the index in)",
    )
    parser.add_argument(
        "--compare-uncapped",
        action="store_true",
        help="clustered: also time the previous layout (no bucket cap) on the same data",
    )
    parser.add_argument(
        "--delta",
        type=int,
        default=0,
        help="clustered: also add a delta of this many hashes (base + delta + tombstones), "
        "time it to matchable, and time lookups while a new base is built in another process",
    )
    args = parser.parse_args(argv)
    args.build_kwargs = {}
    args.substrings = {
        k: int(v) for k, v in (item.split("=") for item in args.substrings.split(",") if item)
    }

    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    if args.quick:
        # 3,000 codes forced through MIH, 3,000 on the flat path, 150,000 on the default MIH
        # path, and 20,000 through the substring plan used at 10 M (11 x 23/24, 3 x 21/22).
        plan = [
            (3000, {"min_mih_size": 0}),
            (3000, {}),
            (150_000, {}),
            (20_000, {"min_mih_size": 0, "plan_for": 10_000_000}),
        ]
        args.queries = min(args.queries, 200)
    else:
        plan = [(int(s), {}) for s in args.sizes.split(",") if s]
    wanted = set(args.profiles.split(","))

    print(
        f"numpy {np.__version__}, faiss {getattr(faiss, '__version__', 'not installed')}, "
        f"queries={args.queries}, affinity={sorted(os.sched_getaffinity(0))}",
        flush=True,
    )
    rows = []
    kinds = set(args.lists.split(","))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n, kwargs in plan:
            for name, bits, radius in PROFILES:
                if name not in wanted:
                    continue
                args.build_kwargs = kwargs
                if "uniform" in kinds:
                    row = bench_one(name, bits, radius, n, args, Path(tmp))
                    row["build_kwargs"] = kwargs
                    print_row(row)
                    rows.append(row)
                if "clustered" in kinds and (not kwargs or args.quick):
                    keep = args.workdir if args.reuse and args.workdir else Path(tmp)
                    row = bench_clustered(name, bits, radius, n, args, keep)
                    print_clustered(row)
                    rows.append(row)
                    if args.delta:
                        row = bench_delta(name, bits, radius, n, args, keep)
                        print_delta(row)
                        rows.append(row)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    bad = sum(r["mismatches"] for r in rows) + sum(r.get("faiss_agrees") is False for r in rows)
    if bad:
        print(f"FAIL: {bad} result mismatches against brute force", file=sys.stderr)
        return 1
    print("OK: index results identical to brute force on every checked query")
    return 0


if __name__ == "__main__":
    sys.exit(main())
