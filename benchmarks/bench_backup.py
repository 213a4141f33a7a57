"""Benchmark: the backup archive's throughput (core.backup_archive), for the RTO estimate.

Set-up: --mb megabytes of synthetic evidence (random bytes, so nothing compresses) in
--files files under --workdir (default /var/tmp/bench_backup, deleted afterwards).

Measured, each --repeat times, best kept (a shared machine: the best run is the least disturbed):
  baseline  read every file, SHA-256 it and write a plain copy (what moving the bytes with a
            checksum costs at all; `cp` plus `sha256sum` does the same work)
  backup    ArchiveWriter: frame, SHA-256 and AES-256-GCM-encrypt every file into one archive
  restore   read_entries: authenticate and decrypt the archive, write every file, check
            each entry's SHA-256 (what `manage.py restore` does to the evidence)

Reported: MB/s of each and the ratio backup/baseline and restore/baseline (same run), and the
implied minutes per 100 GB of evidence. The database part (pg_dump / pg_restore) is not in
here: it scales with the database, not the evidence, and is usually the smaller part.

Correctness, checked on every run: the restored files equal the originals byte for byte.

Usage (from the repository root):
    python benchmarks/bench_backup.py --quick     # 16 MB, checks only
    python benchmarks/bench_backup.py             # 512 MB in 128 files, 3 repeats
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from core.backup_archive import ArchiveWriter, read_entries  # noqa: E402

BLOCK = 1024 * 1024


def _baseline(files: list[Path], out_dir: Path) -> None:
    out_dir.mkdir()
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as source, open(out_dir / path.name, "wb") as out:
            while block := source.read(BLOCK):
                digest.update(block)
                out.write(block)
        digest.hexdigest()


def _backup(files: list[Path], archive: Path, key: bytes) -> None:
    with open(archive, "wb") as sink:
        writer = ArchiveWriter(sink, key)
        for path in files:
            with open(path, "rb") as source:
                writer.add_stream(f"evidence/{path.name}", source)
        writer.close()


def _restore(archive: Path, out_dir: Path, key: bytes) -> None:
    out_dir.mkdir()
    with open(archive, "rb") as source:
        for name, blocks in read_entries(source, [key]):
            with open(out_dir / name.removeprefix("evidence/"), "wb") as out:
                for block in blocks:
                    out.write(block)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--files", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/bench_backup"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.files, args.repeat = 16, 8, 1
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    source_dir = work / "evidence"
    source_dir.mkdir(parents=True)
    size = args.mb * 1024 * 1024 // args.files
    files = []
    for number in range(args.files):
        path = source_dir / f"{number:05d}"
        path.write_bytes(os.urandom(size))
        files.append(path)
    total_mb = size * args.files / 1024 / 1024
    key = os.urandom(32)
    best = {"baseline": float("inf"), "backup": float("inf"), "restore": float("inf")}
    try:
        for run in range(args.repeat):
            for label in best:
                target = work / f"{label}-{run}"
                started = time.perf_counter()
                if label == "baseline":
                    _baseline(files, target)
                elif label == "backup":
                    _backup(files, work / f"archive-{run}", key)
                else:
                    _restore(work / f"archive-{run}", target, key)
                best[label] = min(best[label], time.perf_counter() - started)
                if label == "restore":
                    for path in files:
                        if (target / path.name).read_bytes() != path.read_bytes():
                            print(f"FAIL: {path.name} differs after restore")
                            return 1
                shutil.rmtree(target, ignore_errors=True)
                if label == "restore":
                    (work / f"archive-{run}").unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = {label: total_mb / seconds for label, seconds in best.items()}
    print(f"{total_mb:.0f} MB in {args.files} files, best of {args.repeat}:")
    for label in best:
        minutes = 100 * 1024 / rate[label] / 60
        ratio = rate[label] / rate["baseline"]
        print(
            f"  {label:8s} {rate[label]:8.1f} MB/s  {ratio:5.2f}x baseline  "
            f"~{minutes:.0f} min per 100 GB"
        )
    print("OK: restored files identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
