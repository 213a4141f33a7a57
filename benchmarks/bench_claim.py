"""Benchmark: claiming the head of the review queue on PostgreSQL, 64 concurrent claimers.

Variants, each measured in the same run, on a freshly loaded table:

  orm       BASELINE (PERFORMANCE.md): the Django ORM two-statement idiom,
            select_for_update(skip_locked=True)...first() then .update(), on the schema it
            would have on its own: a partial index on status = 'open' (what this repository had
            before migration 0006, with claimed_by indexed) and no queue trigger
  orm-conns the same idiom on the claimer harness of session 2 (a thread and a connection per
            claimer, --db-slots claims in flight): it does better there than behind --pool
            workers on some runs, so targets are judged against the faster of orm and orm-conns
  orm+audit the same, plus the held-case check and audit_record (like for like with `service`)
  stmt      the app's claim call (moderation.services.queue.claim_statement(): one call of the
            server-side function moderation_claim_next -- held-case check, claim, lease and
            audit event) on a raw cursor, returning the id
  service   moderation.services.queue.case_claim_next(): the same call, returning a Case -- what the API
            and the console call

For stmt/service the schema is the app's (migration 0006): claims pick from QueueEntry (a narrow
table kept by a trigger) and update the case row in place (HOT); a side thread runs
moderation.services.queue.queue_vacuum() every --vacuum-every seconds, as beat does in production
(moderation.vacuum_queue, every 10 s). --seal also runs core.audit.audit_seal() every 5 s, as
beat does, and reports whether it kept up.

Claimers: 64, each its own moderator account, each asking again as soon as its claim returns
(a closed loop). The lease is set to 0 s in the bench processes so the held-case check (still
executed) never returns the case the claimer took a moment ago: every call is a new claim.
How they reach the database:
  --pool N  (the reported runs use 3, docker-compose's gunicorn --workers 3) N app workers, each
            a process with one connection serving its claimers one at a time in arrival order,
            as a sync gunicorn worker does; latency is reported end to end (the wait for a
            worker plus the claim) and for the claim call alone
  default   P processes x T threads (--procs, default 4 x 16), a connection per claimer;
            --db-slots N bounds the claims in flight (a semaphore, like a pool of N)
Data: RANDOM_SLA by default (session 2's data), --arrival for SLA that follows arrival.

Measured: claims/s per 10-second window, p50/p99/max latency, decay (first vs last 60 s for runs
of 2 minutes or more, else first vs last window), and correctness: every claimed id is returned
once; every returned id is in_review and held by its claimer; in_review rows == claims; the
claim queue agrees with the case table; one case.claimed audit event per claim for the audited
variants. --short also verifies the audit chain after sealing.

Usage (from the repository root):
    python benchmarks/bench_claim.py --short        # 60k cases, 8 claimers, 10 s per variant
    python benchmarks/bench_claim.py                # 1 M cases, 64 claimers, 60 s per variant
    python benchmarks/bench_claim.py --pool 3 --db-slots 8 \
        --variants orm,orm-conns,orm+audit,stmt,service --sustained service,orm   # + 2 x 10 min
    python benchmarks/bench_claim.py --pool 3 --variants service --seconds 600 --rate 3000
    python benchmarks/bench_claim.py --pool 3 --variants service --seconds 600 --rate 1123 \
        --timeline /tmp/claim    # + a per-second timeline with pg_stat_activity wait events
Exit status 1 on any correctness problem; outside --short also when the sustained variant
misses a target.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DB_NAME = os.environ.get("BENCH_DB", "safeguard_bench")
PG_URL = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
WINDOW = 10.0
VARIANTS = ("orm", "orm+audit", "stmt", "service")
# The baseline again on session 2's harness (one connection per claimer, --db-slots claims in
# flight), where the ORM idiom does better than behind --pool workers: targets are judged
# against the faster of the two, so the harness can't flatter the ratio.
ORM_CONNS = "orm-conns"
AUDITED = ("orm+audit", "stmt", "service")
BASELINE_FOR = {"stmt": "orm", "service": "orm"}
BASELINES = ("orm", ORM_CONNS)
LIKE_FOR_LIKE = {"service": "orm+audit", "stmt": "orm+audit"}

# The baseline's own indexes, as this table had them before 0006: the open-queue index the ORM
# idiom claims through, and claimed_by (its held-case check, in orm+audit).
BASELINE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS bench_case_open_idx ON moderation_case "
    "(priority, sla_due_at, id) WHERE status = 'open'",
    "CREATE INDEX IF NOT EXISTS bench_case_claimed_by_idx ON moderation_case (claimed_by_id)",
)
DROP_BASELINE_INDEXES = "DROP INDEX IF EXISTS bench_case_open_idx, bench_case_claimed_by_idx"


# --- database set-up ---------------------------------------------------------------------------


def admin_connect(dbname: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(f"{PG_URL}/{dbname}")
    conn.autocommit = True
    return conn


def database_exists(name: str = DB_NAME) -> bool:
    conn = admin_connect("postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        found = cur.fetchone() is not None
    conn.close()
    return found


def setup_django(create: bool = True) -> None:
    """Create the bench database if needed, point Django at it and migrate."""
    if create and not database_exists():
        conn = admin_connect("postgres")
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{DB_NAME}"')
        conn.close()
    _django_only()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure_users(n: int = 64) -> list[int]:
    """n moderators (bench-mod-000...) in the Moderator group, plus one lead; returns mod ids."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.roles import MODERATOR, SAFETY_LEAD

    user_model = get_user_model()
    existing = set(
        user_model.objects.filter(username__startswith="bench-").values_list("username", flat=True)
    )
    new = [
        user_model(username=f"bench-mod-{i:03d}", password="!")  # noqa: S106 - unusable
        for i in range(n)
        if f"bench-mod-{i:03d}" not in existing
    ]
    user_model.objects.bulk_create(new)
    mods = user_model.objects.filter(username__startswith="bench-mod-").order_by("id")
    Group.objects.get(name=MODERATOR).user_set.add(*mods)
    lead, _ = user_model.objects.get_or_create(username="bench-lead", defaults={"password": "!"})
    Group.objects.get(name=SAFETY_LEAD).user_set.add(lead)
    return list(mods.values_list("id", flat=True)[:n])  # one moderator per claimer


# The default (RANDOM_SLA, as in session 2): arrival time and SLA drawn independently of the id,
# so every claim reads a random page of the case table, the worst case for the buffer cache.
# --arrival: a backlog as intake builds it: ids in arrival order over three days and
# sla_due_at = created_at + the SLA of the priority (principles.models.DEFAULT_SLA), so within a
# priority the claim order follows the heap.
_ARRIVED = "now() - interval '3 days' * (1 - g::float8 / %(n)s)"
ARRIVAL = {
    "created_at": _ARRIVED,
    "sla_due_at": f"{_ARRIVED} + (ARRAY[15, 60, 240, 1440, 4320])[p.prio + 1] * interval '1 minute'",
}
RANDOM_SLA = {
    "created_at": "now() - ((hashint4(g * 19) & 2147483647) %% 259200) * interval '1 s'",
    "sla_due_at": "now() - interval '2 days' "
    "+ ((hashint4(g * 17) & 2147483647) %% 345600) * interval '1 s'",
}

LOAD_SQL = """
INSERT INTO moderation_case (subject_key, source, status, priority, category_id, immediate_risk,
    restricted, claimed_by_id, claimed_at, lease_expires_at, sla_due_at, priority_reasons,
    created_at, updated_at, decided_at)
SELECT 'bench:account:' || g,
       (ARRAY['web', 'app', 'api', 'partner'])[1 + g %% 4],
       'open',
       p.prio,
       (%(cats)s::bigint[])[1 + (hashint4(g * 7) & 2147483647) %% %(ncats)s],
       false,
       (hashint4(g * 13) & 2147483647) %% 100 = 0,
       NULL, NULL, NULL,
       {sla_due_at},
       '[]'::jsonb,
       {created_at},
       now(),
       NULL
FROM generate_series(1, %(n)s) AS g,
LATERAL (SELECT CASE WHEN r < 1 THEN 0 WHEN r < 10 THEN 1 WHEN r < 35 THEN 2
                     WHEN r < 65 THEN 3 ELSE 4 END AS prio
         FROM (SELECT (hashint4(g * 11) & 2147483647) %% 100 AS r) AS x) AS p
"""


def load_cases(n: int, *, baseline: bool, quiet: bool = False, arrival: bool = False) -> float:
    """Empty the queue (and the audit log) and load n open cases; returns seconds taken.

    1 % restricted, priorities P0 1 %, P1 9 %, P2 25 %, P3 30 %, P4 35 %, arrival and SLA as
    ARRIVAL (or RANDOM_SLA) says, a category from the registry, subject_key unique.
    The trigger is off during the bulk load (one INSERT ... SELECT fills the claim queue after),
    and stays off for the baseline, which gets its own partial index instead.
    """
    t = time.perf_counter()
    conn = admin_connect(DB_NAME)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM principles_harmcategory ORDER BY id")
        cats = [r[0] for r in cur.fetchall()] or [None]
        cur.execute(
            "TRUNCATE moderation_case, moderation_queueentry, core_auditevent "
            "RESTART IDENTITY CASCADE"
        )
        cur.execute(DROP_BASELINE_INDEXES)
        cur.execute("ALTER TABLE moderation_case DISABLE TRIGGER moderation_case_queue_sync")
        cur.execute(
            LOAD_SQL.format(**(ARRIVAL if arrival else RANDOM_SLA)),
            {"cats": cats, "ncats": len(cats), "n": n},
        )
        if baseline:
            for sql in BASELINE_INDEXES:
                cur.execute(sql)
        else:
            cur.execute(
                "INSERT INTO moderation_queueentry (case_id, priority, sla_due_at, restricted) "
                "SELECT id, priority, sla_due_at, restricted FROM moderation_case "
                "WHERE status = 'open'"
            )
            cur.execute("ALTER TABLE moderation_case ENABLE TRIGGER moderation_case_queue_sync")
        cur.execute("VACUUM (ANALYZE) moderation_case")
        cur.execute("VACUUM (ANALYZE) moderation_queueentry")
        cur.execute("VACUUM (ANALYZE) core_auditevent")
        cur.execute("CHECKPOINT")
    conn.close()
    took = time.perf_counter() - t
    if not quiet:
        print(f"  loaded {n:,} open cases in {took:.1f} s", flush=True)
    return took


def restore_schema() -> None:
    """Leave the bench database as the app's migrations made it."""
    conn = admin_connect(DB_NAME)
    with conn.cursor() as cur:
        cur.execute(DROP_BASELINE_INDEXES)
        cur.execute("ALTER TABLE moderation_case ENABLE TRIGGER moderation_case_queue_sync")
    conn.close()


# --- claimers ----------------------------------------------------------------------------------


def _claim_fn(variant: str) -> Any:
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from core.audit import audit_record
    from moderation.models import Case
    from moderation.services.queue import case_claim_next, claim_statement

    settings.SAFEGUARD_LEASE_SECONDS = 0

    def stmt(user: Any) -> int | None:
        sql, params = claim_statement(user=user)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return row[0] if row else None

    def service(user: Any) -> int | None:
        case = case_claim_next(user=user)
        return case.pk if case is not None else None

    def orm(user: Any, audit: bool) -> int | None:
        now = timezone.now()
        if audit:  # the same held-case check as the service, so like is compared with like
            held = (
                Case.objects.filter(
                    claimed_by=user, status=Case.Status.IN_REVIEW, lease_expires_at__gt=now
                )
                .order_by("claimed_at")
                .first()
            )
            if held is not None:
                return held.pk
        with transaction.atomic():
            case = (
                Case.objects.select_for_update(skip_locked=True)
                .filter(status=Case.Status.OPEN, restricted=False)
                .order_by("priority", "sla_due_at", "id")
                .first()
            )
            if case is None:
                return None
            Case.objects.filter(pk=case.pk).update(
                status=Case.Status.IN_REVIEW,
                claimed_by=user,
                claimed_at=now,
                lease_expires_at=now,
                updated_at=now,
            )
            if audit:
                audit_record(
                    actor=user,
                    verb="case.claimed",
                    object_type="moderation.case",
                    object_id=case.pk,
                    data={"lease_expires_at": now.isoformat()},
                )
        return case.pk

    return {
        "stmt": stmt,
        "service": service,
        "orm": lambda u: orm(u, False),
        ORM_CONNS: lambda u: orm(u, False),
        "orm+audit": lambda u: orm(u, True),
    }[variant]


def _worker(
    base: int,
    n_threads: int,
    n_claimers: int,
    variant: str,
    user_ids: list[int],
    ready: Any,
    go: Any,
    start_at: Any,
    duration: float,
    out_path: str,
    slots: Any = None,
    pooled: bool = False,
    rate: float = 0.0,
    shared: Any = None,
) -> None:
    """Run this process's claimers (global numbers base .. base + n_threads - 1).

    Default: one thread and one connection per claimer. pooled (--pool): this process is one
    app worker with one connection, like a sync gunicorn worker, serving its claimers' requests
    one at a time in arrival order. With every claimer asking again as soon as its claim
    returns (a closed loop), arrival order is round robin, so one thread serves them in turn
    and each claimer's latency is from the end of its previous claim to the end of this one:
    the wait for the worker plus the claim. (Threads queueing on a lock would add the client's
    thread switching to the worker's CPU, which a real worker does not pay.)
    rate (--rate, with --pool): an open loop instead. Claims arrive at this worker as a Poisson
    process of `rate` per second, from its claimers in turn, whether or not earlier ones are
    done; latency runs from a claim's arrival to its answer, so time queued behind a slow claim
    counts (no coordinated omission).
    shared (an open loop's --dispatch shared): one arrival stream at `rate` for all workers;
    each worker, when free, takes the next arrival from a counter they share, as gunicorn's
    workers take the next connection from the one listening socket (one queue, c servers:
    M/G/c). Without it, each worker has its own stream of rate / workers (c queues of M/G/1).
    """
    _django_only()
    from django.contrib.auth import get_user_model
    from django.db import connection

    claim = _claim_fn(variant)
    user_model = get_user_model()
    users_all = {u.pk: u for u in user_model.objects.filter(pk__in=user_ids)}
    results: list[tuple[Any, ...]] = []
    lock = threading.Lock()

    def run(idxs: list[int]) -> None:
        # each claimer works through its own moderator accounts in turn
        groups = [[users_all[uid] for uid in user_ids[base + k :: n_claimers]] for k in idxs]
        every = [[users_all[uid] for uid in user_ids[g::n_claimers]] for g in range(n_claimers)]
        for mine in every if shared is not None else groups:  # warm the permission caches
            for u in mine:
                u.has_perm("moderation.view_all_cases")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        ends, lats, stmts, ids, uids = [], [], [], [], []
        empties, errors = 0, []
        offsets: list[float] = []
        if rate:  # arrival times of the open loop, fixed by the worker's number (or shared),
            # as offsets from the start: drawn before the start, since drawing a 10-minute
            # stream (2 M numbers) once the clock ran made the first half second's arrivals
            # queue behind the harness itself
            rng = np.random.default_rng(0 if shared is not None else base)
            offsets = np.cumsum(rng.exponential(1 / rate, int(rate * duration * 2))).tolist()
        for _ in idxs:
            ready.put(1)
        go.wait()
        t0 = start_at.value
        deadline = t0 + duration
        last = [t0] * len(groups)  # when each claimer last got an answer (asked again)
        turns = [0] * len(groups)
        i = j = 0
        now = time.perf_counter()
        while now < deadline:
            if shared is not None:  # the next arrival of the one queue, whoever it is for
                with shared.get_lock():
                    i = shared.value
                    shared.value += 1
                arrival = t0 + offsets[i]
                if arrival >= deadline:
                    break
                if arrival > now:
                    time.sleep(arrival - now)
                j = 0
                last[j] = arrival
                mine = every[i % n_claimers]
                user = mine[(i // n_claimers) % len(mine)]
            else:
                j = i % len(groups)
                if rate:
                    arrival = t0 + offsets[i]
                    if arrival >= deadline:
                        break
                    if arrival > now:
                        time.sleep(arrival - now)
                    last[j] = arrival  # latency counts from the claim's arrival
                i += 1
                mine = groups[j]
                user = mine[turns[j] % len(mine)]
                turns[j] += 1
            if slots is not None:  # a bounded pool of in-flight claims (like a DB pool)
                slots.acquire()
            began = time.perf_counter()
            try:
                case_id = claim(user)
            except Exception as exc:  # noqa: BLE001 - report, keep claiming
                errors.append(repr(exc)[:200])
                connection.close()
                now = last[j] = time.perf_counter()
                continue
            finally:
                if slots is not None:
                    slots.release()
            end = time.perf_counter()
            if case_id is None:
                empties += 1
            else:
                ends.append(end - t0)
                lats.append(end - last[j])
                stmts.append(end - began)
                ids.append(case_id)
                uids.append(user.pk)
            now = last[j] = end
        connection.close()
        with lock:
            results.append(
                (
                    np.array(ends, dtype=np.float64),
                    np.array(lats, dtype=np.float64),
                    np.array(stmts, dtype=np.float64),
                    np.array(ids, dtype=np.int64),
                    np.array(uids, dtype=np.int64),
                    empties,
                    errors[:5] + ([f"... {len(errors)} errors"] if len(errors) > 5 else []),
                )
            )

    served = [list(range(n_threads))] if pooled else [[t] for t in range(n_threads)]
    threads = [threading.Thread(target=run, args=(idxs,)) for idxs in served]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    np.savez(
        out_path,
        ends=np.concatenate([r[0] for r in results]),
        lats=np.concatenate([r[1] for r in results]),
        stmts=np.concatenate([r[2] for r in results]),
        ids=np.concatenate([r[3] for r in results]),
        uids=np.concatenate([r[4] for r in results]),
        empties=np.array([sum(r[5] for r in results)]),
        errors=np.array([e for r in results for e in r[6]] or [""]),
    )


def _django_only() -> None:
    os.environ["DATABASE_URL"] = f"{PG_URL}/{DB_NAME}"
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = "bench"  # noqa: S105 - throwaway database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


class Maintenance(threading.Thread):
    """What beat does during the run: queue_vacuum() every few seconds (the app's variants),
    optionally audit_seal() every 5 s; samples dead rows in the claim queue every window."""

    def __init__(
        self, vacuum_every: float | None, seal: bool, throttle: tuple[float, int] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.vacuum_every = vacuum_every
        self.throttle = throttle
        self.seal = seal
        self.stop = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.vacuums: list[float] = []
        self.vacuum_spans: list[tuple[float, float]] = []  # (start, end), perf_counter
        self.seals: list[tuple[int, float]] = []

    def run(self) -> None:
        from django.db import connection

        from core.audit import audit_seal
        from moderation.services.queue import queue_vacuum

        t0 = time.perf_counter()
        next_sample = t0 + WINDOW
        next_vac = t0 + self.vacuum_every if self.vacuum_every else None
        next_seal = t0 + 5.0 if self.seal else None
        while not self.stop.is_set():
            now = time.perf_counter()
            if next_vac is not None and now >= next_vac:
                if self.throttle:
                    queue_vacuum(cost_delay_ms=self.throttle[0], cost_limit=self.throttle[1])
                else:
                    queue_vacuum()
                self.vacuums.append(time.perf_counter() - now)
                self.vacuum_spans.append((now, time.perf_counter()))
                next_vac = time.perf_counter() + self.vacuum_every
            if next_seal is not None and now >= next_seal:
                sealed = 0
                while True:  # drain, as repeated beat runs would
                    n = audit_seal()
                    sealed += n
                    if n < 5000:
                        break
                self.seals.append((sealed, time.perf_counter() - now))
                next_seal = time.perf_counter() + 5.0
            if now >= next_sample:
                with connection.cursor() as cur:
                    cur.execute(
                        "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables "
                        "WHERE relname IN ('moderation_queueentry', 'moderation_case')"
                    )
                    self.samples.append({"t": round(now - t0), "dead": int(cur.fetchone()[0])})
                next_sample += WINDOW
            self.stop.wait(0.1)
        connection.close()


class ActivitySampler(threading.Thread):
    """--timeline: what every PostgreSQL process was doing, sampled every `interval` seconds
    from pg_stat_activity on a connection of its own, bucketed by second of the run, so a slow
    second can be lined up with waits (Lock/..., LWLock/WALWrite, IO/...), with the checkpointer
    and with the server log (log_checkpoints, log_autovacuum_min_duration, log_lock_waits).
    Client backends count as "idle" between claims: all three idle while latency is high
    points at the clients or the host, not the server."""

    def __init__(self, t0: float, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.t0 = t0
        self.interval = interval
        self.stop = threading.Event()
        self.by_second: dict[int, dict[str, int]] = {}
        self.samples: dict[int, int] = {}

    def run(self) -> None:
        conn = admin_connect(DB_NAME)
        me = "SELECT pg_backend_pid()"
        with conn.cursor() as cur:
            cur.execute(me)
            my_pid = cur.fetchone()[0]
            while not self.stop.is_set():
                sec = int(time.perf_counter() - self.t0)
                cur.execute(
                    "SELECT backend_type, state, wait_event_type, wait_event, count(*) "
                    "FROM pg_stat_activity WHERE pid <> %s "
                    "AND (datname = %s OR datname IS NULL) GROUP BY 1, 2, 3, 4",
                    [my_pid, DB_NAME],
                )
                bucket = self.by_second.setdefault(sec, {})
                for btype, state, wtype, wevent, n in cur.fetchall():
                    if btype == "client backend":
                        if state == "active":
                            key = f"client {wtype}/{wevent}" if wtype else "client CPU"
                        else:
                            key = f"client {state}"
                    elif wtype and wtype != "Activity":  # a background process doing something
                        key = f"{btype} {wtype}/{wevent}"
                    elif not wtype:
                        key = f"{btype} CPU"
                    else:
                        continue  # background process in its main loop (idle)
                    bucket[key] = bucket.get(key, 0) + n
                self.samples[sec] = self.samples.get(sec, 0) + 1
                self.stop.wait(self.interval)
        conn.close()

    def mean(self, sec: int) -> dict[str, float]:
        n = self.samples.get(sec, 0)
        return {k: v / n for k, v in self.by_second.get(sec, {}).items()} if n else {}


def wal_counters() -> dict[str, float]:
    """WAL written and checkpoints so far, server-wide: what the claims cost the WAL (mostly
    full-page images right after each checkpoint) and how often checkpoints came."""
    conn = admin_connect(DB_NAME)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT w.wal_records, w.wal_fpi, w.wal_bytes, w.wal_buffers_full, "
            "b.checkpoints_timed, b.checkpoints_req FROM pg_stat_wal w, pg_stat_bgwriter b"
        )
        row = cur.fetchone()
    conn.close()
    keys = ("wal_records", "wal_fpi", "wal_bytes", "wal_buffers_full", "ckpt_timed", "ckpt_req")
    return dict(zip(keys, (float(v) for v in row), strict=True))


def latency_timeline(
    ends: np.ndarray,
    lats: np.ndarray,
    stmts: np.ndarray,
    seconds: float,
    t0_epoch: float,
    vacuum_spans: list[tuple[float, float]],
    activity: ActivitySampler | None,
) -> list[dict[str, Any]]:
    """Per second of the run (by each claim's answer): claims, end-to-end p50/p99/max, the
    claim call's max, whether the queue vacuum ran in that second, and the mean number of
    PostgreSQL processes in each state (see ActivitySampler)."""
    rows = []
    secs = np.floor(ends).astype(np.int64)
    order = np.argsort(secs, kind="stable")
    secs, lats, stmts = secs[order], lats[order], stmts[order]
    bounds = np.searchsorted(secs, np.arange(int(np.ceil(seconds)) + 1))
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        window = lats[lo:hi]
        vac = any(a < k + 1 and b > k for a, b in vacuum_spans)
        rows.append(
            {
                "t": k,
                "utc": time.strftime("%H:%M:%S", time.gmtime(t0_epoch + k)),
                "claims": int(hi - lo),
                "p50_ms": float(np.percentile(window, 50) * 1e3) if hi > lo else 0.0,
                "p99_ms": float(np.percentile(window, 99) * 1e3) if hi > lo else 0.0,
                "max_ms": float(window.max() * 1e3) if hi > lo else 0.0,
                "call_max_ms": float(stmts[lo:hi].max() * 1e3) if hi > lo else 0.0,
                "vacuum": vac,
                "activity": {
                    k2: round(v, 2)
                    for k2, v in sorted((activity.mean(k) if activity else {}).items())
                },
            }
        )
    return rows


def write_timeline(path: str, rows: list[dict[str, Any]]) -> None:
    """One line per second, tab-separated, UTC wall clock first (to match the server log)."""
    with open(path, "w") as fh:
        fh.write("utc\tt\tclaims\tp50_ms\tp99_ms\tmax_ms\tcall_max_ms\tvacuum\tactivity\n")
        for r in rows:
            act = " ".join(f"{k}={v}" for k, v in r["activity"].items())
            fh.write(
                f"{r['utc']}\t{r['t']}\t{r['claims']}\t{r['p50_ms']:.2f}\t{r['p99_ms']:.2f}\t"
                f"{r['max_ms']:.1f}\t{r['call_max_ms']:.1f}\t{int(r['vacuum'])}\t{act}\n"
            )


def verify(variant: str, ids: np.ndarray, uids: np.ndarray) -> list[str]:
    """Zero double claims: from the returned ids and from the tables."""
    problems = []
    uniq = np.unique(ids)
    if len(uniq) != len(ids):
        problems.append(f"{len(ids) - len(uniq)} ids were returned more than once")
    conn = admin_connect(DB_NAME)
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE claimed (id bigint, uid bigint)")
        buf = io.StringIO(
            "".join(f"{i}\t{u}\n" for i, u in zip(ids.tolist(), uids.tolist(), strict=True))
        )
        cur.copy_from(buf, "claimed", columns=("id", "uid"))
        cur.execute(
            "SELECT count(*) FILTER (WHERE c.status = 'in_review' AND c.claimed_by_id = t.uid), "
            "count(*) FROM claimed t LEFT JOIN moderation_case c ON c.id = t.id"
        )
        ok, total = cur.fetchone()
        if ok != total:
            problems.append(f"{total - ok} returned ids are not in_review for their claimer")
        cur.execute("SELECT count(*) FROM moderation_case WHERE status = 'in_review'")
        in_review = cur.fetchone()[0]
        if in_review != len(ids):
            problems.append(f"{in_review} rows in_review but {len(ids)} claims returned")
        if variant in ("stmt", "service"):
            cur.execute(
                "SELECT count(*) FROM moderation_case c FULL JOIN moderation_queueentry q "
                "ON q.case_id = c.id AND c.status IN ('open', 'in_review') "
                "WHERE q.case_id IS NULL AND c.status IN ('open', 'in_review') "
                "OR c.id IS NULL "
                "OR q.holder_id IS DISTINCT FROM "
                "   (CASE WHEN c.status = 'in_review' THEN c.claimed_by_id END)"
            )
            drift = cur.fetchone()[0]
            if drift:
                problems.append(f"{drift} claim-queue rows disagree with the case table")
        if variant in AUDITED:
            cur.execute(
                "SELECT count(*), count(DISTINCT object_id) FROM core_auditevent "
                "WHERE verb = 'case.claimed'"
            )
            n_ev, n_obj = cur.fetchone()
            if n_ev != len(ids) or n_obj != len(ids):
                problems.append(f"{n_ev} audit events ({n_obj} cases) for {len(ids)} claims")
    conn.close()
    return problems


def _rate(ends: np.ndarray, lo: float, hi: float) -> float:
    return float(np.count_nonzero((ends >= lo) & (ends < hi)) / (hi - lo))


def run_variant(
    variant: str,
    *,
    cases: int,
    claimers: int,
    procs: int,
    seconds: float,
    vacuum_every: float,
    seal: bool,
    user_ids: list[int],
    check_chain: bool = False,
    arrival: bool = False,
    db_slots: int = 0,
    pool: int = 0,
    rate: float = 0.0,
    timeline: str | None = None,
    throttle: tuple[float, int] | None = None,
    dispatch: str = "split",
) -> dict[str, Any]:
    baseline = variant.startswith("orm")
    load_cases(cases, baseline=baseline, arrival=arrival)
    ctx = mp.get_context("fork")
    if variant == ORM_CONNS:
        pool = 0
    if pool:
        procs, db_slots = pool, pool
    procs = min(procs, claimers)
    per = [claimers // procs + (1 if i < claimers % procs else 0) for i in range(procs)]
    ready, go, start_at = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    slots = ctx.Semaphore(db_slots) if db_slots and not pool else None
    shared = ctx.Value("q", 0) if rate and pool and dispatch == "shared" else None
    tmp = tempfile.mkdtemp(prefix="bench_claim_")
    from django.db import connections

    connections.close_all()
    ps = []
    base = 0
    for pi, nt in enumerate(per):
        p = ctx.Process(
            target=_worker,
            args=(
                base,
                nt,
                claimers,
                variant,
                user_ids,
                ready,
                go,
                start_at,
                seconds,
                f"{tmp}/p{pi}.npz",
                slots,
                bool(pool),
                (rate if shared is not None else rate / len(per)) if pool else 0.0,
                shared,
            ),
        )
        base += nt
        p.start()
        ps.append(p)
    for _ in range(claimers):
        ready.get(timeout=120)
    maint = Maintenance(None if baseline else vacuum_every, seal and variant in AUDITED, throttle)
    wal_before = wal_counters()
    # the start is set last, just before the go: what runs between the two delays the
    # claimers past the first arrivals
    start_at.value = time.perf_counter() + 0.05
    t0_epoch = time.time() + (start_at.value - time.perf_counter())
    sampler = ActivitySampler(start_at.value) if timeline else None
    if sampler is not None:
        sampler.start()
    maint.start()
    go.set()
    for p in ps:
        p.join()
    wal_after = wal_counters()
    maint.stop.set()
    maint.join()
    if sampler is not None:
        sampler.stop.set()
        sampler.join()
    parts = [np.load(f"{tmp}/p{pi}.npz") for pi in range(len(per))]
    ends = np.concatenate([p["ends"] for p in parts])
    lats = np.concatenate([p["lats"] for p in parts])
    stmts = np.concatenate([p["stmts"] for p in parts])
    ids = np.concatenate([p["ids"] for p in parts])
    uids = np.concatenate([p["uids"] for p in parts])
    empties = int(sum(int(p["empties"][0]) for p in parts))
    errors = [str(e) for p in parts for e in p["errors"] if str(e)]
    n_win = max(1, int(seconds // WINDOW))
    windows = [_rate(ends, k * WINDOW, (k + 1) * WINDOW) for k in range(n_win)]
    if seconds >= 120:
        first, last = _rate(ends, 0, 60), _rate(ends, seconds - 60, seconds)
    else:
        first, last = windows[0], windows[-1]
    problems = verify(variant, ids, uids)
    if empties:
        problems.append(f"{empties} claims found the queue empty (load more cases)")
    if errors:
        problems.append(f"errors: {errors[:3]}")
    unsealed = None
    if seal and variant in AUDITED:
        from core.models import AuditEvent

        unsealed = AuditEvent.objects.filter(seq__isnull=True).count()
    if check_chain and variant in AUDITED:
        from core.audit import audit_verify_chain

        report = audit_verify_chain()
        if not report.ok:
            problems.append(f"audit chain broken at {report.broken_at}: {report.reason}")

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q) * 1e3) if len(a) else 0.0

    rows = []
    if timeline:
        spans = [(a - start_at.value, b - start_at.value) for a, b in maint.vacuum_spans]
        rows = latency_timeline(ends, lats, stmts, seconds, t0_epoch, spans, sampler)
        write_timeline(f"{timeline}.{variant}.tsv", rows)

    return {
        "variant": variant,
        "cases": cases,
        "claimers": claimers,
        "procs": procs,
        "seconds": seconds,
        "claims": len(ids),
        "rate": len(ids) / seconds,
        "windows": [round(w) for w in windows],
        "p50_ms": pct(lats, 50),
        "p99_ms": pct(lats, 99),
        "max_ms": float(lats.max() * 1e3) if len(lats) else 0.0,
        "db_slots": db_slots,
        "pool": pool,
        "offered_rate": rate,
        "dispatch": dispatch if rate and pool else "",
        "stmt_p50_ms": pct(stmts, 50),
        "stmt_p99_ms": pct(stmts, 99),
        # exact percentiles per minute (by answer time): where in the run the tail came from
        "minutes": [
            {
                "from_s": k * 60,
                "claims": int(np.count_nonzero(sel)),
                "p50_ms": pct(lats[sel], 50),
                "p99_ms": pct(lats[sel], 99),
                "max_ms": float(lats[sel].max() * 1e3) if sel.any() else 0.0,
            }
            for k in range(int(np.ceil(seconds / 60)))
            for sel in [(ends >= k * 60) & (ends < (k + 1) * 60)]
        ],
        "first_rate": first,
        "last_rate": last,
        "decay": 1 - last / first if first else 0.0,
        "min_window": min(windows),
        "problems": problems,
        "dead_samples": [s["dead"] for s in maint.samples],
        "vacuum_seconds": [round(v, 3) for v in maint.vacuums],
        "seals": maint.seals,
        "unsealed_at_end": unsealed,
        "start_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t0_epoch)),
        # server-wide (pg_stat_wal, pg_stat_bgwriter) over the measured window
        "wal": {k: wal_after[k] - wal_before[k] for k in wal_before},
        "timeline": rows,
        "timeline_file": f"{timeline}.{variant}.tsv" if timeline else None,
    }


def print_result(r: dict[str, Any]) -> None:
    print(
        f"{r['variant']:10s} {r['seconds']:5.0f}s {r['rate']:7.0f} claims/s  "
        f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.1f} ms  "
        f"decay {r['decay'] * 100:+5.1f} % ({r['first_rate']:.0f} -> {r['last_rate']:.0f}/s)  "
        f"min window {r['min_window']:.0f}/s  "
        f"{'OK' if not r['problems'] else 'FAIL ' + '; '.join(r['problems'])}",
        flush=True,
    )
    if r.get("offered_rate"):
        print(
            f"     open loop ({r.get('dispatch') or 'split'} dispatch): {r['offered_rate']:.0f} "
            "claims/s offered (Poisson), latency from "
            "each claim's arrival",
            flush=True,
        )
    if r["db_slots"]:
        how = "workers of one connection" if r.get("pool") else "slots"
        print(
            f"     {r['db_slots']} {how}: claim time without the slot wait "
            f"p50 {r['stmt_p50_ms']:.2f} ms p99 {r['stmt_p99_ms']:.2f} ms",
            flush=True,
        )
    print(f"     claims/s per 10 s: {r['windows']}", flush=True)
    if r["vacuum_seconds"]:
        v = r["vacuum_seconds"]
        print(
            f"     queue vacuums: {len(v)}, {np.mean(v) * 1e3:.0f} ms mean, {max(v) * 1e3:.0f} ms "
            f"max; dead rows (queue + case) per window: {r['dead_samples']}",
            flush=True,
        )
    if len(r.get("minutes", ())) > 1:
        print(
            "     per minute, end to end p50 / p99 / max ms: "
            + "; ".join(
                f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} / {m['max_ms']:.0f}" for m in r["minutes"]
            ),
            flush=True,
        )
    if r.get("wal") and r["claims"]:
        w = r["wal"]
        print(
            f"     WAL (server-wide, during the run): {w['wal_bytes'] / r['claims'] / 1024:.1f} KB "
            f"and {w['wal_fpi'] / r['claims']:.2f} full-page images per claim, "
            f"{w['wal_bytes'] / r['seconds'] / 2**20:.1f} MB/s; checkpoints "
            f"{w['ckpt_req']:.0f} requested (WAL size) + {w['ckpt_timed']:.0f} timed; "
            f"{w['wal_buffers_full']:.0f} WAL-buffers-full writes",
            flush=True,
        )
    if r.get("timeline"):
        slow = [t for t in r["timeline"] if t["max_ms"] > 100 or t["p99_ms"] > 50]
        print(
            f"     timeline: {r['timeline_file']} (started {r['start_utc']} UTC); "
            f"{len(slow)} of {len(r['timeline'])} seconds with p99 > 50 ms or max > 100 ms",
            flush=True,
        )
        for t in slow[:40]:
            act = " ".join(f"{k}={v}" for k, v in t["activity"].items() if v >= 0.1)
            print(
                f"       {t['utc']} t={t['t']:4d}s {t['claims']:5d} claims  p50 "
                f"{t['p50_ms']:7.1f}  p99 {t['p99_ms']:7.1f}  max {t['max_ms']:7.1f}  call max "
                f"{t['call_max_ms']:7.1f} ms{'  VACUUM' if t['vacuum'] else ''}  {act}",
                flush=True,
            )
    if r["seals"]:
        n = sum(s[0] for s in r["seals"])
        took = sum(s[1] for s in r["seals"])
        print(
            f"     sealer: {n:,} events sealed in {took:.1f} s of {r['seconds']:.0f} s; "
            f"{r['unsealed_at_end']:,} unsealed at the end",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--short", action="store_true", help="60k cases, 8 claimers, 10 s/variant")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--claimers", type=int, default=64)
    ap.add_argument("--procs", type=int, default=4, help="claimer processes (threads split)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seconds", type=float, default=60, help="duration of each variant")
    ap.add_argument(
        "--sustained",
        default="",
        help="run these variants (comma-separated) for --sustained-seconds; targets are checked "
        "for the first, against a baseline that ran as long when one did",
    )
    ap.add_argument("--sustained-seconds", type=float, default=600)
    ap.add_argument("--vacuum-every", type=float, default=10.0)
    ap.add_argument(
        "--dispatch",
        choices=("split", "shared"),
        default="split",
        help="open loop: split = each app worker its own arrival stream (rate / workers; "
        "session 3's harness); shared = one stream the workers take from when free, as "
        "gunicorn's workers share one listening socket",
    )
    ap.add_argument(
        "--vacuum-throttle",
        metavar="DELAY_MS:LIMIT",
        help="the queue vacuum's vacuum_cost_delay (ms) and vacuum_cost_limit (default: the app's)",
    )
    ap.add_argument("--seal", action="store_true", help="run the audit sealer as beat does")
    ap.add_argument("--db-slots", type=int, default=0, help="at most N claims in flight")
    ap.add_argument(
        "--pool",
        type=int,
        default=0,
        help="N app workers (processes) of one connection each, the claimers split among them",
    )
    ap.add_argument(
        "--arrival",
        action="store_true",
        help="SLA follows arrival, as intake sets it (see ARRIVAL; default RANDOM_SLA)",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="with --pool: an open loop offering this many claims/s in all (Poisson arrivals)",
    )
    ap.add_argument(
        "--timeline",
        help="write a per-second latency timeline (claims, p50/p99/max, the claim call's max, "
        "queue vacuum, pg_stat_activity wait events sampled every 50 ms) to PREFIX.VARIANT.tsv "
        "and print the slow seconds",
    )
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--drop", action="store_true", help="drop the bench database at the end")
    args = ap.parse_args()
    if args.short:
        args.cases, args.claimers, args.seconds, args.procs = 60_000, 8, 10.0, 2
        args.seal = True

    if args.rate and not args.pool:
        ap.error("--rate needs --pool (the open loop is served by the app workers)")
    throttle = None
    if args.vacuum_throttle:
        delay, _, limit = args.vacuum_throttle.partition(":")
        try:
            throttle = (float(delay), int(limit))
        except ValueError:
            throttle = None
        if throttle is None or throttle[0] < 0 or throttle[1] < 1:
            ap.error(
                f"--vacuum-throttle {args.vacuum_throttle!r}: expected DELAY_MS:LIMIT, "
                "e.g. 5:100 (a delay of 0 or more, a limit of 1 or more)"
            )
    setup_django()
    user_ids = ensure_users(max(args.claimers, 8))
    conn = admin_connect(DB_NAME)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT version(), current_setting('shared_buffers'), "
            "current_setting('synchronous_commit'), current_setting('autovacuum_naptime')"
        )
        ver, sb, sc, nap = cur.fetchone()
    conn.close()
    print(
        f"{ver.split(',')[0]}; shared_buffers={sb} synchronous_commit={sc} "
        f"autovacuum_naptime={nap}; {os.cpu_count()} cores; {args.claimers} claimers "
        f"({args.pool or args.procs} processes); "
        + (
            f"pool: {args.pool} connections"
            if args.pool
            else f"db slots: {args.db_slots or 'none'}"
        ),
        flush=True,
    )
    plan = [(v, args.seconds) for v in args.variants.split(",") if v]
    sustained = [v for v in args.sustained.split(",") if v]
    plan.extend((v, args.sustained_seconds) for v in sustained)
    results = []
    try:
        for variant, secs in plan:
            # enough cases that the queue never drains (≈ 5,000 claims/s at most here); an open
            # loop needs only what it offers, plus a quarter (the queue vacuum's time grows with
            # the number of open cases, so an oversized backlog would measure the wrong thing)
            need = secs * (args.rate * 1.25 if args.rate else 5500)
            cases = args.cases if args.short else max(args.cases, int(need))
            r = run_variant(
                variant,
                cases=cases,
                claimers=args.claimers,
                procs=args.procs,
                seconds=secs,
                vacuum_every=args.vacuum_every,
                throttle=throttle,
                dispatch=args.dispatch,
                seal=args.seal,
                user_ids=user_ids,
                check_chain=args.short,
                db_slots=args.db_slots,
                pool=args.pool,
                rate=args.rate,
                arrival=args.arrival,
                timeline=args.timeline,
            )
            print_result(r)
            results.append(r)
    finally:
        restore_schema()

    short_runs = {r["variant"]: r for r in results if r["seconds"] == args.seconds}
    print("\nRatios against the same-run baseline (mean claims/s, same duration):")
    pairs = (*BASELINE_FOR.items(), *LIKE_FOR_LIKE.items())
    for cand, base in (*pairs, ("stmt", ORM_CONNS), ("service", ORM_CONNS)):
        if cand in short_runs and base in short_runs:
            a, b = short_runs[cand]["rate"], short_runs[base]["rate"]
            print(f"  {cand} / {base}: {a / b:.2f}x ({a:.0f} vs {b:.0f} claims/s)")
    failed = any(r["problems"] for r in results)
    if sustained and not args.short:
        long_runs = {r["variant"]: r for r in results if r["seconds"] == args.sustained_seconds}
        s = long_runs[sustained[0]]
        measured = [short_runs[b] for b in BASELINES if b in short_runs]
        base = max(measured, key=lambda r: r["rate"]) if measured else None
        if base is not None:
            print(
                f"  {sustained[0]} {s['seconds']:.0f} s / the faster baseline "
                f"({base['variant']}, {base['seconds']:.0f} s): {s['rate'] / base['rate']:.2f}x"
            )
        # like for like when a baseline also ran the whole duration on the same data
        long_base = [long_runs[b] for b in BASELINES if b in long_runs]
        if long_base:
            base = max(long_base, key=lambda r: r["rate"])
            print(
                f"  {sustained[0]} / {base['variant']}, both {s['seconds']:.0f} s: "
                f"{s['rate'] / base['rate']:.2f}x ({s['rate']:.0f} vs {base['rate']:.0f} claims/s)"
            )
        checks = {
            ">= 3000 claims/s": s["rate"] >= 3000,
            f">= 2.9x ORM idiom ({base['variant'] if base else '-'}, "
            f"{base['seconds'] if base else 0:.0f} s)": base is not None
            and s["rate"] >= 2.9 * base["rate"],
            # the claim as the app worker sees it; the claimer's end-to-end time also holds its
            # wait for a worker, whose mean a closed loop fixes at claimers / rate (below)
            "p99 <= 10 ms (claim call)": s["stmt_p99_ms"] <= 10,
            "decay <= 20 %": s["decay"] <= 0.20,
            "zero double claims": not s["problems"],
        }
        print(
            f"\nTargets for {sustained[0]}, {s['seconds']:.0f} s: "
            + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items()),
            flush=True,
        )
        print(
            f"End to end (wait for a worker + claim): p50 {s['p50_ms']:.1f} ms, p99 "
            f"{s['p99_ms']:.1f} ms; a closed loop of {s['claimers']} claimers at {s['rate']:.0f}/s "
            f"waits {s['claimers'] / s['rate'] * 1e3:.1f} ms on average (Little's law)",
            flush=True,
        )
        failed = failed or not all(checks.values())
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    if args.drop:
        from django.db import connections

        connections.close_all()
        conn = admin_connect("postgres")
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.close()
        print(f"dropped {DB_NAME}")
    print("FAIL" if failed else "OK", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
