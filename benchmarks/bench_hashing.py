"""Benchmark: naive vs fast media hash pipeline (moderation.media.hashing), same run, one core.

Usage (from the repository root):

    python benchmarks/bench_hashing.py            # full run: 200 JPEG + 200 PNG, timings + drift
    python benchmarks/bench_hashing.py --n 60     # smaller full run
    python benchmarks/bench_hashing.py --quick    # a few images, correctness only (CI smoke test)

Images are synthetic (moderation.media.synthetic: gradients, shapes, noise, stripes), 1024x768,
JPEG quality 90 and PNG. Both pipelines hash every file; the two are timed interleaved, image by
image, so that load from other processes on the machine hits both alike. Pin to one core for the
per-core figure: ``taskset -c 0`` and ``OPENBLAS_NUM_THREADS=1`` (set below if unset).

Exit status is non-zero if a drift bound is broken on the photo-like ("mixed") images or on any
PNG (pHash/dHash must be exact there), or, in a full run, if the fast pipeline is not at least
4.6x (JPEG) / 1.8x (PNG) the naive one.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

# Single-threaded BLAS: a per-core figure, and what a Celery worker process should run with.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from moderation.media.hashing import (  # noqa: E402
    MediaHashes,
    compute_hashes,
    compute_hashes_naive,
    hamming_hex,
)
from moderation.media.synthetic import STYLES, encode, synthetic_image  # noqa: E402

PDQ_BOUND, SMALL_BOUND = 10, 2
MIN_RATIO = {"jpg": 4.6, "png": 1.8}


def style_of(seed: int) -> str:
    """The style synthetic_image picks for ``seed`` (mirrors its first draw)."""
    return STYLES[random.Random(seed).randrange(len(STYLES))]


def generate(directory: Path, n: int, seed: int) -> dict[str, list[tuple[Path, str]]]:
    files: dict[str, list[tuple[Path, str]]] = {"jpg": [], "png": []}
    for i in range(n):
        image = synthetic_image(seed + i, 1024, 768)
        style = style_of(seed + i)
        for ext, fmt in (("jpg", "JPEG"), ("png", "PNG")):
            path = directory / f"img{seed + i:05d}.{ext}"
            path.write_bytes(encode(image, fmt, quality=90))
            files[ext].append((path, style))
    return files


def run(files: list[tuple[Path, str]]) -> dict[str, Any]:
    naive_times: list[float] = []
    fast_times: list[float] = []
    drift: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    compute_hashes(files[0][0])  # warm-up: imports, weight caches
    compute_hashes_naive(files[0][0])
    for path, style in files:
        start = time.perf_counter()
        naive: MediaHashes = compute_hashes_naive(path)
        middle = time.perf_counter()
        fast: MediaHashes = compute_hashes(path)
        end = time.perf_counter()
        naive_times.append(middle - start)
        fast_times.append(end - middle)
        assert naive.sha256 == fast.sha256 and naive.width == fast.width
        assert naive.pdq and fast.pdq and naive.phash and fast.phash and naive.dhash and fast.dhash
        drift[style].append(
            (
                hamming_hex(naive.pdq, fast.pdq),
                hamming_hex(naive.phash, fast.phash),
                hamming_hex(naive.dhash, fast.dhash),
                naive.pdq_quality or 0,
            )
        )
    return {"naive": naive_times, "fast": fast_times, "drift": drift}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few images, correctness only")
    parser.add_argument("--n", type=int, default=None, help="images per format (default 200)")
    parser.add_argument("--seed", type=int, default=20_000)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    n = args.n or (12 if args.quick else 200)

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_hashing_") as tmp:
        t0 = time.perf_counter()
        files = generate(Path(tmp), n, args.seed)
        print(f"generated {n} JPEG (q90) + {n} PNG, 1024x768, in {time.perf_counter() - t0:.1f} s")
        for ext in ("jpg", "png"):
            result = run(files[ext])
            naive_t, fast_t = result["naive"], result["fast"]
            naive_rate = len(naive_t) / sum(naive_t)
            fast_rate = len(fast_t) / sum(fast_t)
            ratio = fast_rate / naive_rate
            print(f"\n[{ext.upper()}] n={len(naive_t)}")
            if not args.quick:
                print(
                    f"  naive: {naive_rate:7.1f} img/s  (p50 {statistics.median(naive_t) * 1e3:6.2f} ms)"
                    f"\n  fast:  {fast_rate:7.1f} img/s  (p50 {statistics.median(fast_t) * 1e3:6.2f} ms)"
                    f"\n  ratio: {ratio:5.2f}x"
                )
                if ratio < MIN_RATIO[ext]:
                    failures.append(f"{ext}: fast/naive ratio {ratio:.2f} < {MIN_RATIO[ext]}")
            print("  drift vs naive, max (mean) bits: PDQ of 256 | pHash of 64 | dHash of 64")
            all_rows = []
            for style in STYLES:
                rows = result["drift"].get(style, [])
                if not rows:
                    continue
                all_rows += rows
                cols = list(zip(*rows, strict=True))
                good = [r for r in rows if r[3] >= 50]
                pdq_good = max((r[0] for r in good), default=0)
                print(
                    f"  {style:9s} n={len(rows):3d}  "
                    + " | ".join(f"{max(c):2d} ({statistics.mean(c):4.2f})" for c in cols[:3])
                    + f"   PDQ max where quality>=50: {pdq_good} (n={len(good)})"
                )
                strict = style == "mixed" or ext == "png"
                if strict and max(max(cols[1]), max(cols[2])) > SMALL_BOUND:
                    failures.append(f"{ext}/{style}: pHash/dHash drift above {SMALL_BOUND}")
                if style == "mixed" and max(cols[0]) > PDQ_BOUND:
                    failures.append(f"{ext}/{style}: PDQ drift above {PDQ_BOUND}")
                if ext == "png" and max(cols[1] + cols[2]) > 0:
                    failures.append(f"png/{style}: pHash/dHash not exact")
                if pdq_good > PDQ_BOUND:
                    failures.append(f"{ext}/{style}: PDQ drift above {PDQ_BOUND} at quality>=50")
            cols = list(zip(*all_rows, strict=True))
            print(
                f"  all       n={len(all_rows):3d}  "
                + " | ".join(f"{max(c):2d} ({statistics.mean(c):4.2f})" for c in cols[:3])
            )

    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nOK: drift bounds hold" + ("" if args.quick else " and ratios meet the targets"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
