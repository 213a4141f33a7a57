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
    brute_force,
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


def time_each(fn: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[np.ndarray, list]:
    """Per-query wall time in ms (after one warm-up call) and the results."""
    fn(queries[0])
    times = np.empty(len(queries))
    results = []
    for i, q in enumerate(queries):
        t0 = time.perf_counter_ns()
        res = fn(q)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
        results.append(res)
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
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n, kwargs in plan:
            for name, bits, radius in PROFILES:
                if name not in wanted:
                    continue
                args.build_kwargs = kwargs
                row = bench_one(name, bits, radius, n, args, Path(tmp))
                row["build_kwargs"] = kwargs
                print_row(row)
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
