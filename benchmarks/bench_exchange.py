"""Benchmark: an exchange sync of N synthetic hashes, fetched and indexed, against a plain CSV
import of the same N hashes (the same-run baseline).

Set-up (the real code paths, synthetic data only): the fake exchange server of the tests
(tests/moderation/exchanges/fake_exchange.py) runs in its own process serving N random PDQ
hashes in StopNCII's shape, 800 per page (the page size python-threatexchange asks for). The
same N hashes are written to a CSV file.

Measured, each phase in a fresh process (so that peak RSS is its own) against an emptied
hash-list table:
  csv       hash_import_create + hash_import_run of the CSV into a new PDQ list (the baseline:
            the existing bulk path, file read whole)
  exchange  exchange_create (StopNCII, pointed at the fake) + exchange_fetch: the library's
            fetch_iter page by page, each page applied in one transaction (hashes upserted
            through the import's own upsert, provenance rows, checkpoint, audit event), then
            the list re-versioned and the rescan enqueued — then "indexed": the PDQ match
            index built for the new list version (moderation.matching.banks.bank_load) and
            one lookup; the CSV phase builds it too.
  small     the exchange phase for N/10 hashes, to show memory is bounded (independent of N)

Reported: wall time, rows/s, peak RSS (ru_maxrss) per phase; the exchange/CSV time ratio; the
N vs N/10 RSS ratio; progress samples (pages applied over time) of the exchange phase. Then
(PostgreSQL) a delta on the indexed CSV list: 10,000 new hashes and 1,000 withdrawals written
as an import writes them, made matchable by the refresh task's work -- seconds from the write
to matchable against the full index build of the same list (what every change cost before).

Correctness, checked on every run: each phase ends with exactly N live hashes in its list;
the exchange phase with N provenance rows, fetch status done and a checkpoint at the last
record's time.

Usage (from the repository root):
    .venv/bin/python benchmarks/bench_exchange.py --quick       # 20,000 hashes, SQLite
    .venv/bin/python benchmarks/bench_exchange.py --database-url \\
        postgres://postgres@127.0.0.1:5432/safeguard_bench_exchange   # 1,000,000; created, dropped
Exit status: 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
FAKE = REPO_ROOT / "tests" / "moderation" / "exchanges" / "fake_exchange.py"
SEED = 20261130
PAGE_SIZE = 800
DELTA = 10_000  # new hashes written to the indexed CSV list afterwards (issue 15 part 8)


# --- environment ------------------------------------------------------------------------------


def _admin_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("--database-url needs a database name")
    return urlunsplit(parts._replace(path="/postgres")), name


def _pg_admin(url: str, statements: list[str]) -> None:
    import psycopg2

    admin, _ = _admin_url(url)
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


def _environ(var_dir: Path, database_url: str | None) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "DATABASE_URL"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        # DEBUG off: with it on, Django keeps the last 9,000 SQL statements with their
        # parameters, which at 800 rows a statement is most of the process's memory.
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(40),
        LOG_LEVEL="WARNING",
        SAFEGUARD_VAR_DIR=str(var_dir),
        SAFEGUARD_INDEX_DIR=str(var_dir / "index"),
        SAFEGUARD_EXCHANGE_KEY=Fernet.generate_key().decode(),
        SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS="true",  # the fake exchange runs here
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


# --- phases (run in a child process) ------------------------------------------------------------


def _empty_tables() -> None:
    from django.db import connection

    from moderation.models import Exchange, ExchangeEntry, ExchangeFetch, HashImport, HashList

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE moderation_exchangeentry, moderation_exchangefeedback, "
                "moderation_exchangefetch, moderation_exchange, moderation_hashimport, "
                "moderation_knownhash, moderation_hashlist CASCADE"
            )
        return
    for model in (ExchangeEntry, ExchangeFetch, Exchange, HashImport):
        model.objects.all().delete()
    HashList.objects.all().delete()


def _index(hash_list: Any) -> float:
    """Build the list's PDQ match index (as the first match after a change does); seconds."""
    from moderation.matching.banks import bank_load
    from moderation.models import HashList

    hash_list = HashList.objects.get(pk=hash_list.pk)
    started = time.perf_counter()
    bank_load(hash_list)
    return time.perf_counter() - started


def _delta(hash_list: Any, size: int) -> dict[str, Any]:
    """Part 8 of issue 15 on the indexed list: ``size`` new hashes and ``size // 10``
    withdrawals written as an import or a fetch writes them, then the refresh task's work
    (bank_refresh): seconds from the write to matchable, against the full build just measured
    (what every change cost before). Checks the new hashes match, the withdrawn ones don't, and
    no new base was built."""
    import random

    from django.conf import settings
    from django.db import connection, transaction

    from core.audit import SystemActor
    from moderation.matching.banks import bank_load, bank_refresh, bank_status, match_perceptual
    from moderation.models import HashList, KnownHash
    from moderation.services.hashlists import (
        ParsedRow,
        hash_list_changed,
        known_hashes_upsert,
        known_hashes_withdraw,
    )

    if connection.vendor != "postgresql":
        return {}
    rng = random.Random(SEED + 1)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(size)]
    old = list(
        KnownHash.objects.filter(hash_list=hash_list)
        .order_by("id")
        .values_list("id", "value")[: size // 10]
    )
    bases = sorted(p.name for p in Path(settings.SAFEGUARD_INDEX_DIR).glob("*-b*[0-9]"))
    started = time.perf_counter()
    with transaction.atomic():
        known_hashes_upsert(
            hash_list=hash_list,
            rows=[
                ParsedRow(line=i, value=v, category="", metadata={}) for i, v in enumerate(values)
            ],
        )
        known_hashes_withdraw(
            hash_list=hash_list,
            known_hash_ids=[i for i, _ in old],
            actor=SystemActor("benchmark"),
            reason="benchmark",
        )
        hash_list_changed(hash_list_id=hash_list.pk, rescan=False)
    written = time.perf_counter() - started
    bank_refresh(hash_list.pk)
    matchable = time.perf_counter() - started
    fresh = HashList.objects.get(pk=hash_list.pk)
    found = sum(bool(match_perceptual(v, fresh)) for v in values[:: max(1, size // 100)])
    gone = sum(bool(match_perceptual(v, fresh)) for _, v in old[:: max(1, len(old) // 100)])
    layered = bank_load(fresh).index
    return {
        "size": size,
        "withdrawn": len(old),
        "write_seconds": written,
        "matchable_seconds": matchable,
        "status": bank_status(fresh),
        "new_found": found,
        "new_checked": len(values[:: max(1, size // 100)]),
        "withdrawn_matched": gone,
        "delta_rows": getattr(layered, "delta_size", None),
        "tombstones": getattr(layered, "tombstones", None),
        "rebuilt": sorted(p.name for p in Path(settings.SAFEGUARD_INDEX_DIR).glob("*-b*[0-9]"))
        != bases,
    }


def phase(name: str, count: int, csv_path: str, url: str) -> dict[str, Any]:
    import django

    django.setup()
    import moderation.services.hashlists as hashlists_module
    from core.audit import SystemActor
    from moderation.exchanges.configure import ExchangeSettings, exchange_create
    from moderation.exchanges.fetch import exchange_fetch
    from moderation.models import ExchangeEntry, ExchangeFetch, KnownHash
    from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert

    actor = SystemActor("benchmark")
    _empty_tables()
    # In production the match-index refresh that each committed page enqueues runs in a worker
    # process, not in the one fetching; here tasks run in-process (no REDIS_URL), so the fetch's
    # time and memory would include merges and rebuilds of the index. Hold them back during the
    # fetch or import, and build the index once afterwards (timed and measured on its own).
    enqueue = hashlists_module.enqueue_on_commit
    held: list[tuple[Any, ...]] = []

    def enqueue_but_refresh(task: Any, *args: Any, **kwargs: Any) -> None:
        if task == "moderation.refresh_match_index":
            held.append(args)
            return
        enqueue(task, *args, **kwargs)

    hashlists_module.enqueue_on_commit = enqueue_but_refresh  # type: ignore[assignment]
    hash_list, _ = hash_list_upsert(name=f"bench-{name}", algorithm="pdq", actor=actor)
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    result: dict[str, Any] = {"phase": name, "count": count}
    if name == "csv":
        content = Path(csv_path).read_bytes()
        imp = hash_import_create(
            hash_list=hash_list, content=content, filename="b.csv", actor=actor
        )
        del content
        done = hash_import_run(import_id=imp.pk)
        result["status"] = done.status if done else "missing"
    else:
        exchange = exchange_create(
            kind="stopncii",
            settings=ExchangeSettings(
                name="bench", enabled=False, hash_list=hash_list, options={"base_url": url}
            ),
            credentials={
                "subscription_key": "sub-key-0123456789",
                "fetch_function_key": "fetch-key-0123456789",
            },
            actor=actor,
        )
        from moderation.models import Exchange

        Exchange.objects.filter(pk=exchange.pk).update(enabled=True)
        stop = threading.Event()

        def sample() -> None:
            from django.db import connections

            while not stop.wait(2.0):
                fetch = ExchangeFetch.objects.filter(exchange_id=exchange.pk).first()
                samples.append((time.perf_counter() - started, fetch.records if fetch else 0))
            connections.close_all()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        fetch = exchange_fetch(exchange_id=exchange.pk, budget_seconds=10**9)
        stop.set()
        sampler.join()
        exchange.refresh_from_db()
        result["status"] = fetch.status if fetch else "missing"
        result["pages"] = fetch.pages if fetch else 0
        result["entries"] = ExchangeEntry.objects.filter(exchange=exchange).count()
        result["checkpoint"] = exchange.checkpoint
    fetched = time.perf_counter() - started
    # Peak RSS of the fetch (or import) alone, before the match index is built for the list.
    result["fetch_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hashlists_module.enqueue_on_commit = enqueue  # type: ignore[assignment]
    result["refreshes_held"] = len(held)
    result["index_seconds"] = _index(hash_list)
    result["seconds"] = time.perf_counter() - started
    result["fetch_seconds"] = fetched
    result["live"] = KnownHash.objects.filter(hash_list=hash_list, withdrawn_at=None).count()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["samples"] = samples
    if name == "csv":
        result["delta"] = _delta(hash_list, DELTA)
    return result


# --- orchestration ------------------------------------------------------------------------------


def _fake_server(count: int, var_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = var_dir / "fake.port"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen(
        [
            sys.executable,
            str(FAKE),
            "--stopncii-synthetic",
            str(count),
            "--page-size",
            str(PAGE_SIZE),
            "--seed",
            str(SEED),
            "--port-file",
            str(port_file),
        ],
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + 600
    while not port_file.exists() or not port_file.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the fake exchange did not start")
        time.sleep(0.1)
    return server, f"http://127.0.0.1:{port_file.read_text()}/stopncii"


def _write_csv(count: int, path: Path) -> None:
    from tests.moderation.exchanges.fake_exchange import synthetic_stopncii

    with path.open("w") as out:
        for event in synthetic_stopncii(count, seed=SEED):
            out.write(f"{event.data['hashValue']},,\n")


def _run_phase(name: str, count: int, csv: Path, url: str, env: dict[str, str]) -> dict[str, Any]:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            name,
            "--count",
            str(count),
            "--csv",
            str(csv),
            "--url",
            url,
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 hashes: checks only")
    parser.add_argument("--database-url", help="postgres://…/name (created, then dropped)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        print(json.dumps(phase(args.phase, args.count, args.csv, args.url)))
        return 0
    count = 20_000 if args.quick else args.count
    var_dir = Path(tempfile.mkdtemp(prefix="bench_exchange_"))
    if args.database_url:
        _, name = _admin_url(args.database_url)
        _pg_admin(
            args.database_url, [f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"']
        )
    env = _environ(var_dir, args.database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    csv = var_dir / "hashes.csv"
    _write_csv(count, csv)
    small = max(count // 10, 1)
    server, url = _fake_server(count, var_dir)
    results: list[dict[str, Any]] = []
    try:
        for name, n in (("csv", count), ("exchange", count)):
            results.append(_run_phase(name, n, csv, url, env))
    finally:
        server.kill()
        server.wait()
    server, url = _fake_server(small, var_dir)
    try:
        results.append({**_run_phase("exchange", small, csv, url, env), "phase": "small"})
    finally:
        server.kill()
        server.wait()
    if args.database_url:
        _, name = _admin_url(args.database_url)
        _pg_admin(args.database_url, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])
    return report(results, count, small)


def report(results: list[dict[str, Any]], count: int, small: int) -> int:
    by = {r["phase"]: r for r in results}
    problems = []
    for r in results:
        expected = small if r["phase"] == "small" else count
        if r["live"] != expected or r["status"] not in ("done",):
            problems.append(f"{r['phase']}: {r['live']} live hashes, status {r['status']}")
        if r["phase"] != "csv" and r.get("entries") != expected:
            problems.append(f"{r['phase']}: {r.get('entries')} provenance rows")
    for r in results:
        print(
            f"{r['phase']:9} {r['count']:>9,} hashes  {r['seconds']:8.1f} s  "
            f"({r['fetch_seconds']:.1f} s fetch/import + {r['index_seconds']:.1f} s index)  "
            f"{r['count'] / r['seconds']:>9,.0f} rows/s  peak RSS {r['fetch_rss_mb']:,.0f} MB "
            f"fetching/importing, {r['peak_rss_mb']:,.0f} MB with the index"
            + (f"  {r['pages']} pages" if "pages" in r else "")
        )
    exchange, csv = by["exchange"], by["csv"]
    print(f"exchange / CSV time: {exchange['seconds'] / csv['seconds']:.2f}x")
    print(
        f"exchange fetch peak RSS at {count:,} vs {small:,} hashes: "
        f"{exchange['fetch_rss_mb'] / by['small']['fetch_rss_mb']:.2f}x"
        f"  (CSV import: {csv['fetch_rss_mb']:,.0f} MB)"
    )
    samples = exchange["samples"]
    step = max(1, len(samples) // 20)
    print(
        "progress (s: records):",
        ", ".join(f"{t:.0f}: {n:,}" for t, n in samples[::step]),
    )
    delta = csv.get("delta") or {}
    if delta:
        if delta["new_found"] != delta["new_checked"] or delta["withdrawn_matched"]:
            problems.append(f"delta: {delta}")
        print(
            f"delta: {delta['size']:,} new + {delta['withdrawn']:,} withdrawn on the "
            f"{count:,}-hash list: written in {delta['write_seconds']:.2f} s, matchable "
            f"{delta['matchable_seconds'] - delta['write_seconds']:.2f} s after the commit "
            f"(refresh), vs {csv['index_seconds']:.1f} s for a full build of the list "
            f"({csv['index_seconds'] / (delta['matchable_seconds'] - delta['write_seconds']):.1f}x);"
            " "
            f"freshness shown to admins {delta['status']['freshness_seconds']} s; delta "
            f"{delta['delta_rows']:,} rows, {delta['tombstones']:,} tombstones, new base built: "
            f"{delta['rebuilt']}; {delta['new_found']}/{delta['new_checked']} new hashes "
            f"matched, {delta['withdrawn_matched']} withdrawn matched"
        )
    for problem in problems:
        print("CHECK FAILED:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
