"""Benchmark: the cost of evidence encryption at rest (core.evidence_crypto), as ratios against
the plaintext operation it replaced, measured in the same run, interleaved.

Usage (from the repository root):

    python benchmarks/bench_evidence_crypto.py             # 48 MiB file, 5 rounds
    python benchmarks/bench_evidence_crypto.py --mib 8 --rounds 2   # quick

Three operations, each against its own baseline:

- store:   encrypt_file (intake: staging → evidence store)  vs  a plain 1 MiB-block copy
- digest:  evidence_digests (decrypt + SHA-256/MD5/SHA-1: the worker's custody check and
           exact digests)                                    vs  file_digests of the plaintext
- view:    evidence_sha256 (decrypt + SHA-256: the media view's custody check, once per reveal)
                                                             vs  SHA-256 of the plaintext
- range:   an 8 MiB byte range through EvidenceReader (a video player seeking)
                                                             vs  seek + read of the plaintext

The data key's database row is replaced by an in-memory dict (one indexed query per file in the
application, not what is measured here). Files live in a temporary directory under /var/tmp.
Single-threaded; the machine is shared, so only ratios mean anything. Exit status is non-zero if
a round trip fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("SAFEGUARD_EVIDENCE_MASTER_KEYS", "")

import django  # noqa: E402

django.setup()

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from core import evidence_crypto as ec  # noqa: E402
from moderation.media.hashing import file_digests  # noqa: E402

_KEYS: dict[uuid.UUID, bytes] = {}


def _create(*, name: str = "") -> tuple[uuid.UUID, bytes]:
    ref, key = uuid.uuid4(), AESGCM.generate_key(bit_length=256)
    _KEYS[ref] = key
    return ref, key


ec.data_key_create = _create  # type: ignore[assignment]
ec.data_key_load = _KEYS.__getitem__  # type: ignore[assignment]


def plain_copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as i, open(dst, "wb") as o:
        while block := i.read(1024 * 1024):
            o.write(block)
        o.flush()
        os.fsync(o.fileno())


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="bench-evidence-", dir="/var/tmp"))
    try:
        plain = work / "plain.bin"
        with open(plain, "wb") as fh:
            for _ in range(args.mib):
                fh.write(os.urandom(1024 * 1024))
        enc = work / "evidence.enc"
        ec.encrypt_file(plain, enc)
        if ec.evidence_digests(enc).sha256 != file_digests(plain)[0]:
            print("FAIL: round trip", file=sys.stderr)
            return 1
        rng = random.Random(7)
        span = 8 * 1024 * 1024

        def range_plain(offset: int) -> None:
            with open(plain, "rb") as fh:
                fh.seek(offset)
                fh.read(span)

        def range_enc(offset: int) -> None:
            with ec.evidence_open(enc) as reader:
                reader.seek(offset)
                reader.read(span)

        def sha256_plain(path: Path) -> None:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(1024 * 1024):
                    digest.update(block)

        results: dict[str, list[tuple[float, float]]] = {
            "store": [],
            "digest": [],
            "view": [],
            "range": [],
        }
        for _ in range(args.rounds):
            results["store"].append(
                (timed(plain_copy, plain, work / "copy.bin"), timed(ec.encrypt_file, plain, enc))
            )
            results["digest"].append((timed(file_digests, plain), timed(ec.evidence_digests, enc)))
            results["view"].append((timed(sha256_plain, plain), timed(ec.evidence_sha256, enc)))
            offset = rng.randrange(0, max(1, size - span))
            results["range"].append((timed(range_plain, offset), timed(range_enc, offset)))
        print(f"evidence encryption at rest: {args.mib} MiB file, {args.rounds} rounds, medians")
        print(
            f"{'operation':<8} {'baseline s':>11} {'encrypted s':>12} {'ratio':>7} {'MiB/s enc':>10}"
        )
        for name, pairs in results.items():
            base = statistics.median(p[0] for p in pairs)
            encd = statistics.median(p[1] for p in pairs)
            mib = (span / 1024 / 1024) if name == "range" else args.mib
            print(f"{name:<8} {base:>11.4f} {encd:>12.4f} {encd / base:>6.2f}x {mib / encd:>10.0f}")
    finally:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
