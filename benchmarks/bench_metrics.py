"""Benchmark: what metrics cost — per request (the middleware) and per scrape (GET /metrics).

1. Per request. The same request through Django's full handler (test Client, every middleware
   of settings.MIDDLEWARE) in three variants, interleaved in rounds so that drift hits them
   alike:
     baseline            MIDDLEWARE without core.requestid and core.metrics' middleware
     safeguard           MIDDLEWARE as shipped (request id + counter + histogram)
     django-prometheus   baseline plus django-prometheus 2.5.0's Before/After middleware pair
                         (only with --django-prometheus-path: it is not a dependency; install
                         it apart, e.g. `pip install --no-deps --target DIR django-prometheus`)
   Route: GET /metrics without the token (401 from the view: no database, no broker, so only
   the middleware differs between variants). Also the middleware alone,
   called around a view that returns at once, for the bare per-request cost in µs.
2. Per scrape. After `seed_demo` (the demo's synthetic data, hashed, with hash lists and
   matches) plus --extra-cases open cases: GET /metrics with the bearer token, against GET
   /healthz measured in the same run; the time of each collector from the scrape's own
   safeguard_metrics_collector_duration_seconds. Target: a scrape p95 under 100 ms.

Usage (from the repository root):
    python benchmarks/bench_metrics.py --quick                    # checks only, small counts
    python benchmarks/bench_metrics.py                            # SQLite, embedded mode
    python benchmarks/bench_metrics.py --database-url postgres://postgres@127.0.0.1:5432/sg_bench_metrics \\
        --redis-url redis://127.0.0.1:6379/7 --django-prometheus-path /var/tmp/djprom
Exit status 1 if a check fails (every named series present, the scrape answers 200).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

TOKEN = "bench-metrics-token-0123456789abcdef"  # noqa: S105 — a throwaway installation
OURS = ("core.requestid.RequestIdMiddleware", "core.metrics.RequestMetricsMiddleware")
# Through every middleware to a view that answers without the database or the broker (a scrape
# without the token: 401), so what differs between the variants is the middleware.
FULL_STACK_PATH = "/metrics"
DJANGO_PROMETHEUS = (
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
)


def _admin_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def _pg_admin(url: str, statements: list[str]) -> None:
    import psycopg2

    admin, _ = _admin_url(url)
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


def setup(var_dir: Path, database_url: str | None, redis_url: str | None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = "bench-only-secret-key"  # noqa: S105
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["SAFEGUARD_VAR_DIR"] = str(var_dir)
    os.environ["EVIDENCE_ROOT"] = str(var_dir / "evidence")
    os.environ["SAFEGUARD_SIGNING_KEY_FILE"] = str(var_dir / "keys" / "signing.pem")
    os.environ["SAFEGUARD_AUDIT_CHECKPOINT_DIR"] = str(var_dir / "checkpoints")
    os.environ["SAFEGUARD_INDEX_DIR"] = str(var_dir / "index")
    os.environ["SAFEGUARD_METRICS_TOKEN"] = TOKEN
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        os.environ.pop(name, None)
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"  # seed_demo hashes in-process
    if redis_url:  # the Celery collector then reads real queue lengths from this broker
        os.environ["REDIS_URL"] = redis_url
    if database_url:
        _, name = _admin_url(database_url)
        _pg_admin(database_url, [f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'])
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import logging

    # Refused scrapes are logged as warnings by Django: not one line per measured request.
    logging.getLogger("django.request").setLevel(logging.ERROR)


def seed(items: int, extra_cases: int) -> dict[str, int]:
    from django.core.management import call_command
    from django.utils import timezone

    from moderation.models import Case, Exchange, Item, Match, Media

    with open(os.devnull, "w") as devnull:
        call_command("seed_demo", items=items, stdout=devnull)
    # The demo connects no exchange: one disabled row, so the exchange series are exposed too.
    Exchange.objects.get_or_create(name="bench-exchange", defaults={"kind": "ncmec"})
    if extra_cases:
        # Open text cases straight into the tables (the scrape reads aggregates; how the rows
        # got there does not matter): one subject each, spread over priorities and SLAs.
        now = timezone.now()
        Case.objects.bulk_create(
            [
                Case(
                    subject_key=f"bench:{i}",
                    source="bench",
                    priority=i % 5,
                    sla_due_at=now + timezone.timedelta(hours=(i % 48) - 24),
                    created_at=now - timezone.timedelta(minutes=i % 600),
                )
                for i in range(extra_cases)
            ],
            batch_size=5000,
        )
    return {
        "cases": Case.objects.count(),
        "items": Item.objects.count(),
        "media": Media.objects.count(),
        "matches": Match.objects.count(),
    }


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client_for(middleware: list[str]) -> Any:
    from django.test import Client, override_settings

    with override_settings(MIDDLEWARE=middleware):
        client = Client()
        client.get(FULL_STACK_PATH)  # loads the middleware chain under these settings
    return client


def per_request(rounds: int, per_round: int, with_djp: bool) -> dict[str, list[float]]:
    from django.conf import settings

    shipped = list(settings.MIDDLEWARE)
    baseline = [m for m in shipped if m not in OURS]
    variants = {"baseline": baseline, "safeguard": shipped}
    if with_djp:
        variants["django-prometheus"] = [DJANGO_PROMETHEUS[0], *baseline, DJANGO_PROMETHEUS[1]]
    clients = {name: client_for(mw) for name, mw in variants.items()}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, client in clients.items():
            results[name] += timed(lambda c=client: c.get(FULL_STACK_PATH), per_round)
    return results


def middleware_alone(n: int, with_djp: bool) -> dict[str, float]:
    """µs per request of the middleware around a view that returns at once."""
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.urls import resolve

    from core.metrics import RequestMetricsMiddleware
    from core.requestid import RequestIdMiddleware

    response = HttpResponse(b"ok")
    request = RequestFactory().get("/m/raw_lookup")
    request.resolver_match = resolve("/m/raw_lookup")

    def view(_: Any) -> HttpResponse:
        return response

    chains: dict[str, Callable[[Any], Any]] = {
        "none": view,
        "safeguard": RequestIdMiddleware(RequestMetricsMiddleware(view)),
    }
    if with_djp:
        from django_prometheus.middleware import (
            PrometheusAfterMiddleware,
            PrometheusBeforeMiddleware,
        )

        chains["django-prometheus"] = PrometheusBeforeMiddleware(PrometheusAfterMiddleware(view))
    best: dict[str, float] = {}
    for _ in range(5):  # best of 5 rounds, interleaved
        for name, chain in chains.items():
            started = time.perf_counter()
            for _ in range(n):
                chain(request)
            per = (time.perf_counter() - started) / n * 1e6
            best[name] = min(best.get(name, per), per)
    return best


def per_scrape(repeat: int) -> tuple[list[float], list[float], dict[str, float], set[str]]:
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    response = client.get("/metrics", **auth)
    assert response.status_code == 200, response.status_code
    names: set[str] = set()
    collectors: dict[str, list[float]] = {}
    scrape_times, health_times = [], []
    for _ in range(repeat):
        health_times += timed(lambda: client.get("/healthz"), 1)
        started = time.perf_counter()
        response = client.get("/metrics", **auth)
        scrape_times.append(time.perf_counter() - started)
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                names.add(sample.name)
                if sample.name == "safeguard_metrics_collector_duration_seconds":
                    collectors.setdefault(sample.labels["collector"], []).append(sample.value)
    per_collector = {k: statistics.median(v) * 1000 for k, v in collectors.items()}
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get("/metrics", **auth)
    per_collector["(SQL statements per scrape)"] = float(len(queries.captured_queries))
    return scrape_times, health_times, per_collector, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--django-prometheus-path", type=Path)
    parser.add_argument("--items", type=int, default=60, help="seed_demo --items")
    parser.add_argument("--extra-cases", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with_djp = False
    if args.django_prometheus_path:
        sys.path.insert(0, str(args.django_prometheus_path))
        with_djp = True
    var_dir = Path(tempfile.mkdtemp(prefix="bench_metrics_", dir="/var/tmp"))
    setup(var_dir, args.database_url, args.redis_url)
    try:
        quick = args.quick
        counts = seed(12 if quick else args.items, 0 if quick else args.extra_cases)
        print(f"data: {counts}  database: {'PostgreSQL' if args.database_url else 'SQLite'}")

        from tests.core.test_metrics import NAMED_SERIES

        scrapes, health, collectors, names = per_scrape(5 if quick else 100)
        missing = [n for n in NAMED_SERIES if n not in names and "hash_list_index" not in n]
        # (an index exists only once a perceptual lookup built it: not in a fresh demo)
        print("\n== per scrape (GET /metrics, full request)")
        for label, values in (("/healthz (baseline)", health), ("/metrics", scrapes)):
            print(
                f"  {label:22s} p50 {pct(values, 0.5) * 1000:7.2f} ms   "
                f"p95 {pct(values, 0.95) * 1000:7.2f} ms"
            )
        print(f"  ratio p50 /metrics ÷ /healthz: {pct(scrapes, 0.5) / pct(health, 0.5):.2f}x")
        print("  per collector (median ms):")
        statements = int(collectors.pop("(SQL statements per scrape)"))
        for name, ms in sorted(collectors.items(), key=lambda kv: -kv[1]):
            print(f"    {ms:7.2f}  {name}")
        print(f"  SQL statements per scrape: {statements} (plus one Redis pipeline)")

        n = 2000 if quick else 50000
        alone = middleware_alone(n, with_djp)
        print("\n== per request, middleware alone (best of 5, µs per request)")
        for name, us in alone.items():
            extra = f"  (+{us - alone['none']:.2f} µs)" if name != "none" else ""
            print(f"  {name:18s} {us:7.2f}{extra}")
        if with_djp:
            ours = alone["safeguard"] - alone["none"]
            theirs = alone["django-prometheus"] - alone["none"]
            print(f"  django-prometheus costs {theirs / ours:.2f}x ours")

        rounds = 2 if quick else args.rounds
        full = per_request(rounds, 50 if quick else 300, with_djp)
        print(f"\n== per request, full stack (GET {FULL_STACK_PATH} → 401, every middleware)")
        base = statistics.median(full["baseline"])
        for name, values in full.items():
            med = statistics.median(values)
            print(
                f"  {name:18s} p50 {med * 1e6:8.1f} µs  ({med / base:.3f}x baseline, "
                f"{(med - base) * 1e6:+.1f} µs)"
            )
        if missing:
            print(f"FAIL: series missing from the scrape: {missing}")
            return 1
        print("\nchecks: every named series exposed, scrape 200")
        return 0
    finally:
        if args.database_url:
            from django.db import connections

            connections.close_all()
            _, name = _admin_url(args.database_url)
            _pg_admin(args.database_url, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])


if __name__ == "__main__":
    raise SystemExit(main())
