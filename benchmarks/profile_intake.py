"""Where intake's time goes: queries, transactions, audit writes, Celery messages and CPU per
item, for the single-item API, the batch API and the hashing task — counted exactly, in one
process, on the real PostgreSQL and Redis (benchmarks/LOAD.md, "Breakdown").

    python benchmarks/profile_intake.py                # 200 items per path
    python benchmarks/profile_intake.py --n 100 --cprofile 25

Requests go through Django's full middleware and DRF stack (django.test.Client, no socket),
so web CPU here is the application's own, without gunicorn's. Celery messages are counted at
`Task.apply_async` and not sent; the hashing phase then runs the hashing task's body on every
pending media, in the batches the messages named. Items are synthetic: half 320x240 JPEGs
(multipart), half JSON text items. The database `safeguard_profile` is created and dropped.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("LOAD_PG_URL", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("PROFILE_DB_NAME", "safeguard_profile")
REDIS_URL = os.environ.get("PROFILE_REDIS_URL", "redis://127.0.0.1:6379/11")


def _admin(sql: str) -> None:
    conn = psycopg2.connect(f"{PG_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


class Counters:
    """Queries, transactions and Celery messages seen while `active`."""

    def __init__(self) -> None:
        self.queries = 0
        self.transactions = 0
        self.messages: Counter[str] = Counter()
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.active = False

    def reset(self) -> None:
        self.queries = self.transactions = 0
        self.messages = Counter()
        self.sent = []


def _install(counters: Counters) -> None:
    from celery.app.task import Task
    from django.db import connection

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
        if counters.active:
            counters.queries += 1
            if not connection.in_atomic_block:
                counters.transactions += 1  # autocommit: the statement is its own transaction
        return execute(sql, params, many, ctx)

    connection.ensure_connection()
    connection.execute_wrappers.append(wrapper)
    original_commit = connection.commit

    def commit() -> None:
        if counters.active:
            counters.transactions += 1
        original_commit()

    connection.commit = commit  # type: ignore[method-assign]

    def apply_async(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        if counters.active:
            counters.messages[self.name] += 1
            counters.sent.append((self.name, tuple(args or ())))

    Task.apply_async = apply_async  # type: ignore[method-assign]


@contextmanager
def scratch_django(db_name: str, prefix: str, env: dict[str, str]) -> Iterator[Path]:
    """Django configured from the environment on a fresh PostgreSQL database `db_name` and a
    temporary var directory (yielded), both removed afterwards; `env` adds or overrides
    variables. Shared with bench_insert.py."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"{PG_URL}/{db_name}",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "DEBUG": "false",
            "SAFEGUARD_VAR_DIR": str(tmp),
            "LOG_LEVEL": "ERROR",
            **env,
        }
    )
    _admin(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
    _admin(f"CREATE DATABASE {db_name}")
    try:
        yield tmp
    finally:
        from django.db import connections

        connections.close_all()
        _admin(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def phase(
    name: str, n: int, counters: Counters, report: list[dict[str, Any]], top: int
) -> Iterator[None]:
    from core.models import AuditEvent

    audit_before = AuditEvent.objects.count()
    counters.reset()
    counters.active = True
    # CPU time, not wall: a statement waiting on PostgreSQL costs this process nothing.
    profiler = cProfile.Profile(time.process_time) if top else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    try:
        yield
    finally:
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        counters.active = False
        audits = AuditEvent.objects.count() - audit_before
        row = {
            "phase": name,
            "items": n,
            "cpu_ms_per_item": round(cpu * 1000 / n, 2),
            "wall_ms_per_item": round(wall * 1000 / n, 2),
            "queries_per_item": round(counters.queries / n, 2),
            "transactions_per_item": round(counters.transactions / n, 2),
            "audit_events_per_item": round(audits / n, 2),
            "celery_messages_per_item": round(sum(counters.messages.values()) / n, 3),
            "messages": dict(counters.messages),
        }
        report.append(row)
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
            row["profile"] = out.getvalue()
            if dump := os.environ.get("PROFILE_INTAKE_PSTATS"):
                # For pstats' print_callees: one file per phase.
                profiler.dump_stats(f"{dump}.{name.split(':')[0].replace(' ', '_')}")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from core.audit import SystemActor
    from core.tokens import api_token_create
    from moderation.media.synthetic import synthetic_jpeg
    from moderation.models import Media
    from moderation.tasks.hashing import hash_media_batch_task

    call_command("migrate", verbosity=0)
    _, key = api_token_create(name="profile-platform", actor=SystemActor("profile"))
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    images = [synthetic_jpeg(i, 320, 240, quality=85) for i in range(16)]
    counters = Counters()
    _install(counters)
    report: list[dict[str, Any]] = []
    n = args.n

    def single(prefix: str, i: int) -> None:
        data: dict[str, Any] = {"source": "profile", "external_id": f"{prefix}-{i}"}
        if i % 2 == 0:
            upload = io.BytesIO(images[i % len(images)])
            upload.name = "photo.jpg"
            response = client.post(
                "/api/v1/items", {**data, "kind": "image", "media": upload}, secure=True
            )
        else:
            response = client.post(
                "/api/v1/items",
                json.dumps({**data, "kind": "text", "text": f"Synthetic text {i}."}),
                content_type="application/json",
                secure=True,
            )
        assert response.status_code == 201, response.content

    def hash_all(name: str) -> None:
        batches = [a[0] for t, a in counters.sent if t == "moderation.hash_media_batch"]
        pending = Media.objects.filter(hash_status="pending").count()
        with phase(name, max(pending, 1), counters, report, args.cprofile):
            for batch in batches:
                hash_media_batch_task.run(list(batch))
        assert not Media.objects.filter(hash_status__in=["pending", "processing"]).exists()

    with phase("single: POST /api/v1/items", n, counters, report, args.cprofile):
        for i in range(n):
            single("s", i)
    hash_all("hashing after single intake (per image)")

    from django.urls import Resolver404, resolve

    try:
        resolve("/api/v1/items/batch")
    except Resolver404:
        return report  # the code before the batch API (a baseline run)
    batch_size = args.batch
    with phase("batch: POST /api/v1/items/batch", n, counters, report, args.cprofile):
        for start in range(0, n, batch_size):
            items: list[dict[str, Any]] = []
            files: dict[str, Any] = {}
            for i in range(start, min(n, start + batch_size)):
                entry: dict[str, Any] = {"source": "profile", "external_id": f"b-{i}"}
                if i % 2 == 0:
                    part = f"file{i}"
                    upload = io.BytesIO(images[i % len(images)])
                    upload.name = "photo.jpg"
                    files[part] = upload
                    entry.update(kind="image", media=part)
                else:
                    entry.update(kind="text", text=f"Synthetic text {i}.")
                items.append(entry)
            response = client.post(
                "/api/v1/items/batch", {"items": json.dumps(items), **files}, secure=True
            )
            assert response.status_code == 200, response.content[:500]
            statuses = {r["status"] for r in response.json()["results"]}
            assert statuses == {201}, response.content[:500]
    hash_all("hashing after batch intake (per image)")
    return report


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=200, help="items per path")
    ap.add_argument("--batch", type=int, default=100, help="items per batch request")
    ap.add_argument(
        "--cprofile",
        type=int,
        default=0,
        help="print the top N functions (PROFILE_INTAKE_PSTATS=PREFIX also writes each phase's "
        "stats to PREFIX.<phase> for pstats)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with scratch_django(DB_NAME, "sg-profile-", {"REDIS_URL": REDIS_URL}) as tmp:
        os.environ.update(
            {
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "SAFEGUARD_API_RATE": "100000/min",
                "EVIDENCE_ROOT": str(tmp / "evidence"),
                "SAFEGUARD_INDEX_DIR": str(tmp / "hash-index"),
                "ALLOWED_HOSTS": "testserver,127.0.0.1",
            }
        )
        report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    cols = [
        "cpu_ms_per_item",
        "queries_per_item",
        "transactions_per_item",
        "audit_events_per_item",
        "celery_messages_per_item",
    ]
    print(f"{'phase':44} " + " ".join(f"{c.replace('_per_item', ''):>12}" for c in cols))
    for row in report:
        print(f"{row['phase']:44} " + " ".join(f"{row[c]:>12}" for c in cols))
        print(f"{'':44} messages: {row['messages']}")
        if "profile" in row:
            print(row["profile"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
