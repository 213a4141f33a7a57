"""Benchmark: claiming the head of the review queue on PostgreSQL, 64 concurrent claimers.

Variants, each measured in the same run against the same-run baseline:

  a   raw      the one-statement claim SQL of moderation.queue (_CLAIM_SQL), statement only
  b   service  moderation.queue.case_claim_next (held-case check + statement + audit event)
  c   orm+aud  baseline: the Django ORM idiom, select_for_update(skip_locked=True)...first() then
               .update() in a transaction, plus the same held-case check and audit_record call
  c2  orm      the ORM idiom alone (no audit): the baseline for (a)
  d   proposal the claim statement + the audit append as ONE server-side call (a PL/pgSQL
               function created in the bench database only; same hash chain, verified), to
               show what reworking core.audit.audit_record would buy
  e   proposal the claim and an audit row in ONE statement without the chain lock (a copy of
               core_auditevent, bench database only): the cost if a sealer chains events
               asynchronously

Each variant runs on a freshly loaded table of N open cases (TRUNCATE + INSERT ... SELECT
generate_series + VACUUM ANALYZE + CHECKPOINT), so no variant inherits another's dead tuples.
Claimers are P processes x T threads, one connection each (default 4 x 16 = 64): the machine has
2 cores shared with PostgreSQL; psycopg2 releases the GIL while it waits on the server, so a few
processes of many threads keep 64 requests in flight with the least client CPU.

Measured: claims/s per 10-second window, p50/p99/max latency, decay (1 - last window / first
window), and correctness: every claimed id is returned once, and the table agrees (every returned
id is in_review and held by the user it was returned to; in_review rows == claims; one
case.claimed audit event per claim for the audited variants).

Queue tuning (--tuning, applied in the bench database only):
  none        defaults (autovacuum_naptime is server-wide: 1 min here)
  autovacuum  ALTER TABLE moderation_case SET (autovacuum_vacuum_scale_factor = 0,
              autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_cost_delay = 0,
              autovacuum_vacuum_insert_scale_factor = 0, autovacuum_analyze_scale_factor = 0.02,
              fillfactor = 90)
  vacuum      a plain VACUUM moderation_case every --vacuum-every seconds from a side connection
              (what a beat task / pg_cron job would do)
  both        autovacuum + vacuum
  lean        none, and the two plain subject_key indexes dropped (see SUBJECT_KEY_INDEXES)

Usage (from the repository root):
    python benchmarks/bench_claim.py --short            # 20k cases, 8 claimers, 10 s/variant
    python benchmarks/bench_claim.py                    # 1 M cases, 64 claimers
    python benchmarks/bench_claim.py --seconds 600 --variant-seconds 60 --tuning vacuum
Options: --variants a,b,c,c2,d --sustained a --procs 4 --also-tunings none,autovacuum
--db-slots 8 --drop (drop the database at the end).
The sustained variant runs --seconds; the others --variant-seconds (default = --seconds). A run
that could drain the queue loads max(--cases, seconds x 4000) cases and says so.
Exit status: 1 on any double claim / table mismatch (always), or, outside --short, when the
sustained variant misses a target.
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
N_USERS = 300

TUNING_SQL = {
    "none": (
        "ALTER TABLE moderation_case RESET (autovacuum_vacuum_scale_factor, "
        "autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay, "
        "autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor, fillfactor)"
    ),
    "autovacuum": (
        "ALTER TABLE moderation_case SET (autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_cost_delay = 0, "
        "autovacuum_vacuum_insert_scale_factor = 0, autovacuum_analyze_scale_factor = 0.02, "
        "fillfactor = 90)"
    ),
}
TUNING_SQL["vacuum"] = TUNING_SQL["none"]
TUNING_SQL["both"] = TUNING_SQL["autovacuum"]
TUNING_SQL["lean"] = TUNING_SQL["none"]
# "lean": no table parameters, but without the two plain subject_key indexes (db_index=True),
# which the partial unique index case_one_open_per_subject already serves for open/in-review
# lookups. Every claim is a non-HOT update, so it writes every index: 7 -> 5 index inserts.
SUBJECT_KEY_INDEXES = (
    "CREATE INDEX IF NOT EXISTS moderation_case_subject_key_cccd204e "
    "ON moderation_case (subject_key)",
    "CREATE INDEX IF NOT EXISTS moderation_case_subject_key_cccd204e_like "
    "ON moderation_case (subject_key varchar_pattern_ops)",
)
DROP_SUBJECT_KEY_INDEXES = (
    "DROP INDEX IF EXISTS moderation_case_subject_key_cccd204e",
    "DROP INDEX IF EXISTS moderation_case_subject_key_cccd204e_like",
)


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
    os.environ["DATABASE_URL"] = f"{PG_URL}/{DB_NAME}"
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = "bench"  # noqa: S105 - throwaway database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure_users(n: int = N_USERS) -> list[int]:
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
    return list(mods.values_list("id", flat=True))


# Variant (d), a proposal measured in the bench database only: the audit append as one server-side
# call. The chain lock is taken inside the function and the previous hash is read by a later
# statement (a fresh READ COMMITTED snapshot, so never a stale head); SHA-256 is computed in SQL
# over exactly the bytes AuditEvent.compute_hash() hashes, so audit_verify_chain() still holds.
# The lock is then held for one INSERT plus the COMMIT, with no client round trip or Python in
# between, instead of SELECT + Python + INSERT + RELEASE SAVEPOINT + COMMIT.
AUDIT_APPEND_FN = """
CREATE OR REPLACE FUNCTION bench_audit_append(
    p_created_at timestamptz, p_actor_id bigint, p_actor_label text, p_verb text,
    p_object_type text, p_object_id text, p_data jsonb, p_canonical bytea
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
    v_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(%s);
    -- EXECUTE: planned per call, so a plan cached while the log was tiny (seq scan) never sticks
    EXECUTE 'SELECT hash FROM core_auditevent ORDER BY id DESC LIMIT 1' INTO v_prev;
    v_prev := coalesce(v_prev, repeat('0', 64));
    INSERT INTO core_auditevent (created_at, actor_id, actor_label, verb, object_type,
                                 object_id, data, prev_hash, hash)
    VALUES (p_created_at, p_actor_id, p_actor_label, p_verb, p_object_type, p_object_id,
            p_data, v_prev,
            encode(sha256(convert_to(v_prev || '|', 'UTF8') || p_canonical), 'hex'))
    RETURNING id INTO v_id;
    RETURN v_id;
END $$
"""

# Variant (e), also bench-only: the audit event written in the claim statement itself, without
# the chain lock, into a copy of core_auditevent (same columns and indexes; prev_hash left empty
# and hash = SHA-256 of the content) -- what the claim costs if a sealer chains events later.
UNSEALED_TABLE = """
CREATE TABLE IF NOT EXISTS bench_audit_unsealed
    (LIKE core_auditevent INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING IDENTITY)
"""
UNSEALED_INSERT = """
, claimed AS (
{update}
)
INSERT INTO bench_audit_unsealed (created_at, actor_id, actor_label, verb, object_type, object_id,
                                  data, prev_hash, hash)
SELECT %s, %s, %s, 'case.claimed', 'moderation.case', claimed.id::text, %s::jsonb, '',
       encode(sha256(convert_to(claimed.id::text || '|' || %s, 'UTF8')), 'hex')
FROM claimed
RETURNING object_id::bigint
"""


def claim_with_unsealed_audit_sql(claim_sql: str) -> str:
    """_CLAIM_SQL (WITH next_case AS (...) UPDATE ... RETURNING c.id) + the audit INSERT."""
    head, update = claim_sql.split("\nUPDATE ", 1)
    return head + UNSEALED_INSERT.format(update="UPDATE " + update.strip())


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
       now() - interval '2 days' + ((hashint4(g * 17) & 2147483647) %% 345600) * interval '1 s',
       '[]'::jsonb,
       now() - ((hashint4(g * 19) & 2147483647) %% 259200) * interval '1 s',
       now(),
       NULL
FROM generate_series(1, %(n)s) AS g,
LATERAL (SELECT CASE WHEN r < 1 THEN 0 WHEN r < 10 THEN 1 WHEN r < 35 THEN 2
                     WHEN r < 65 THEN 3 ELSE 4 END AS prio
         FROM (SELECT (hashint4(g * 11) & 2147483647) %% 100 AS r) AS x) AS p
"""


def _audit_lock_key() -> int:
    from core import audit

    return int(audit._AUDIT_CHAIN_LOCK_KEY)


def load_cases(n: int, tuning: str = "none", quiet: bool = False) -> float:
    """Empty the queue (and the audit log) and load n open cases. Returns seconds taken.

    1 % restricted, priorities P0 1 %, P1 9 %, P2 25 %, P3 30 %, P4 35 %, SLA due between two
    days ago and two days ahead, a category from the registry, subject_key unique.
    """
    t = time.perf_counter()
    conn = admin_connect(DB_NAME)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM principles_harmcategory ORDER BY id")
        cats = [r[0] for r in cur.fetchall()] or [None]
        cur.execute(UNSEALED_TABLE)
        cur.execute(
            "TRUNCATE moderation_case, core_auditevent, bench_audit_unsealed "
            "RESTART IDENTITY CASCADE"
        )
        cur.execute(TUNING_SQL[tuning])
        for sql in DROP_SUBJECT_KEY_INDEXES if tuning == "lean" else SUBJECT_KEY_INDEXES:
            cur.execute(sql)
        cur.execute(AUDIT_APPEND_FN % _audit_lock_key())
        cur.execute(LOAD_SQL, {"cats": cats, "ncats": len(cats), "n": n})
        cur.execute("VACUUM (ANALYZE) moderation_case")
        cur.execute("VACUUM (ANALYZE) core_auditevent")
        cur.execute("CHECKPOINT")
    conn.close()
    took = time.perf_counter() - t
    if not quiet:
        print(f"  loaded {n:,} open cases in {took:.1f} s (tuning={tuning})", flush=True)
    return took


# --- claimers ----------------------------------------------------------------------------------


def _claim_fn(variant: str) -> Any:
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from core.audit import audit_record
    from core.models import AuditEvent
    from moderation.models import Case
    from moderation.queue import _CLAIM_SQL, case_claim_next

    # Lease 0: the service's held-case check still runs (it is part of the claim) but never
    # returns the case a rotating bench user claimed a moment ago, so every call is a claim.
    settings.SAFEGUARD_LEASE_SECONDS = 0
    raw_sql = _CLAIM_SQL.format(restricted_clause="AND restricted = false")

    def raw(user: Any) -> int | None:
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(raw_sql, [user.pk, now, now, now])
            row = cursor.fetchone()
        return row[0] if row else None

    def proposed(user: Any) -> int | None:
        # (d): the claim statement, then the audit append as one server-side call, one
        # transaction: what case_claim_next would cost with audit_record reworked this way.
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(raw_sql, [user.pk, now, now, now])
            row = cursor.fetchone()
            if row is None:
                return None
            event = AuditEvent(
                created_at=timezone.now(),
                actor_id=user.pk,
                actor_label=user.get_username()[:150],
                verb="case.claimed",
                object_type="moderation.case",
                object_id=str(row[0]),
                data={"lease_expires_at": now.isoformat()},
            )
            cursor.execute(
                "SELECT bench_audit_append(%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    event.created_at,
                    event.actor_id,
                    event.actor_label,
                    event.verb,
                    event.object_type,
                    event.object_id,
                    json.dumps(event.data),
                    event.canonical(),
                ],
            )
        return row[0]

    unsealed_sql = claim_with_unsealed_audit_sql(raw_sql)

    def unsealed(user: Any) -> int | None:
        # (e): ONE statement (autocommit): claim + audit row, no chain lock.
        now = timezone.now()
        data = json.dumps({"lease_expires_at": now.isoformat()})
        with connection.cursor() as cursor:
            cursor.execute(
                unsealed_sql,
                [user.pk, now, now, now, now, user.pk, user.get_username(), data, data],
            )
            row = cursor.fetchone()
        return row[0] if row else None

    def service(user: Any) -> int | None:
        case = case_claim_next(user=user)
        return case.pk if case is not None else None

    def orm(user: Any, audit: bool) -> int | None:
        now = timezone.now()
        if audit:  # the same held-case check as the service, so (b) vs (c) is like for like
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
        "a": raw,
        "b": service,
        "c": lambda u: orm(u, True),
        "c2": lambda u: orm(u, False),
        "d": proposed,
        "e": unsealed,
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
) -> None:
    _django_only()
    from django.contrib.auth import get_user_model
    from django.db import connection

    claim = _claim_fn(variant)
    user_model = get_user_model()
    users_all = {u.pk: u for u in user_model.objects.filter(pk__in=user_ids)}
    results: list[tuple[Any, ...]] = []
    lock = threading.Lock()

    def run(thread_idx: int) -> None:
        claimer = base + thread_idx  # global claimer number
        mine = [users_all[uid] for uid in user_ids[claimer::n_claimers]]
        for u in mine:  # warm the permission caches the service consults
            u.has_perm("moderation.view_all_cases")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        ends, lats, stmts, ids, uids = [], [], [], [], []
        empties, errors = 0, []
        ready.put(1)
        go.wait()
        t0 = start_at.value
        deadline = t0 + duration
        i = 0
        now = time.perf_counter()
        while now < deadline:
            user = mine[i % len(mine)]
            i += 1
            if slots is not None:  # a bounded pool of in-flight claims (like a DB pool)
                slots.acquire()
            began = time.perf_counter()
            try:
                case_id = claim(user)
            except Exception as exc:  # noqa: BLE001 - report, keep claiming
                errors.append(repr(exc)[:200])
                connection.close()
                now = time.perf_counter()
                continue
            finally:
                if slots is not None:
                    slots.release()
            end = time.perf_counter()
            if case_id is None:
                empties += 1
            else:
                ends.append(end - t0)
                lats.append(end - now)
                stmts.append(end - began)
                ids.append(case_id)
                uids.append(user.pk)
            now = end
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

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
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
    os.environ["SECRET_KEY"] = "bench"  # noqa: S105
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


class Monitor(threading.Thread):
    """Samples dead tuples / vacuum counts every window, and optionally runs VACUUM."""

    def __init__(self, vacuum_every: float | None) -> None:
        super().__init__(daemon=True)
        self.vacuum_every = vacuum_every
        self.stop = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.vacuums: list[float] = []

    def run(self) -> None:
        conn = admin_connect(DB_NAME)
        t0 = time.perf_counter()
        next_sample = t0 + WINDOW
        next_vac = t0 + self.vacuum_every if self.vacuum_every else None
        with conn.cursor() as cur:
            while not self.stop.is_set():
                now = time.perf_counter()
                if next_vac is not None and now >= next_vac:
                    v = time.perf_counter()
                    cur.execute("VACUUM moderation_case")
                    self.vacuums.append(time.perf_counter() - v)
                    next_vac = time.perf_counter() + self.vacuum_every
                if now >= next_sample:
                    cur.execute(
                        "SELECT n_dead_tup, n_live_tup, autovacuum_count, vacuum_count, "
                        "pg_relation_size('moderation_case'), "
                        "pg_relation_size('case_queue_open_idx') "
                        "FROM pg_stat_user_tables WHERE relname = 'moderation_case'"
                    )
                    d = cur.fetchone()
                    self.samples.append(
                        {
                            "t": round(now - t0),
                            "dead": d[0],
                            "autovac": d[2],
                            "vac": d[3],
                            "heap_mb": round(d[4] / 2**20),
                            "qidx_mb": round(d[5] / 2**20, 1),
                        }
                    )
                    next_sample += WINDOW
                self.stop.wait(0.2)
        conn.close()


def verify(variant: str, ids: np.ndarray, uids: np.ndarray) -> list[str]:
    """Zero double claims: from the returned ids and from the table."""
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
        if variant in ("b", "c", "d", "e"):
            table = "bench_audit_unsealed" if variant == "e" else "core_auditevent"
            cur.execute(
                f"SELECT count(*), count(DISTINCT object_id) FROM {table} "  # noqa: S608
                "WHERE verb = 'case.claimed'"
            )
            n_ev, n_obj = cur.fetchone()
            if n_ev != len(ids) or n_obj != len(ids):
                problems.append(f"{n_ev} audit events ({n_obj} cases) for {len(ids)} claims")
    conn.close()
    return problems


def run_variant(
    variant: str,
    *,
    cases: int,
    claimers: int,
    procs: int,
    seconds: float,
    tuning: str,
    vacuum_every: float,
    user_ids: list[int],
    check_chain: bool = False,
    db_slots: int = 0,
) -> dict[str, Any]:
    load_cases(cases, tuning)
    ctx = mp.get_context("fork")
    procs = min(procs, claimers)
    per = [claimers // procs + (1 if i < claimers % procs else 0) for i in range(procs)]
    ready, go, start_at = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    slots = ctx.Semaphore(db_slots) if db_slots else None
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
            ),
        )
        base += nt
        p.start()
        ps.append(p)
    for _ in range(claimers):
        ready.get(timeout=120)
    mon = Monitor(vacuum_every if tuning in ("vacuum", "both") else None)
    start_at.value = time.perf_counter() + 0.05
    mon.start()
    go.set()
    for p in ps:
        p.join()
    mon.stop.set()
    mon.join()
    parts = [np.load(f"{tmp}/p{pi}.npz") for pi in range(len(per))]
    ends = np.concatenate([p["ends"] for p in parts])
    lats = np.concatenate([p["lats"] for p in parts])
    stmts = np.concatenate([p["stmts"] for p in parts])
    ids = np.concatenate([p["ids"] for p in parts])
    uids = np.concatenate([p["uids"] for p in parts])
    empties = int(sum(int(p["empties"][0]) for p in parts))
    errors = [str(e) for p in parts for e in p["errors"] if str(e)]
    n_win = max(1, int(seconds // WINDOW))
    windows = [
        float(np.count_nonzero((ends >= k * WINDOW) & (ends < (k + 1) * WINDOW)) / WINDOW)
        for k in range(n_win)
    ]
    problems = verify(variant, ids, uids)
    if empties:
        problems.append(f"{empties} claims found the queue empty (load more cases)")
    if errors:
        problems.append(f"errors: {errors[:3]}")
    if check_chain:
        from core.audit import audit_verify_chain

        report = audit_verify_chain()
        if not report.ok:
            problems.append(f"audit chain broken at {report.broken_at}: {report.reason}")
    res = {
        "variant": variant,
        "tuning": tuning,
        "cases": cases,
        "claimers": claimers,
        "procs": procs,
        "seconds": seconds,
        "claims": len(ids),
        "rate": len(ids) / seconds,
        "windows": [round(w) for w in windows],
        "p50_ms": float(np.percentile(lats, 50) * 1e3) if len(lats) else 0.0,
        "p99_ms": float(np.percentile(lats, 99) * 1e3) if len(lats) else 0.0,
        "max_ms": float(lats.max() * 1e3) if len(lats) else 0.0,
        "db_slots": db_slots,
        "stmt_p50_ms": float(np.percentile(stmts, 50) * 1e3) if len(stmts) else 0.0,
        "stmt_p99_ms": float(np.percentile(stmts, 99) * 1e3) if len(stmts) else 0.0,
        "littles_law_mean_ms": claimers / (len(ids) / seconds) * 1e3 if len(ids) else 0.0,
        "p99_last_window_ms": float(np.percentile(lats[ends >= (n_win - 1) * WINDOW], 99) * 1e3)
        if np.any(ends >= (n_win - 1) * WINDOW)
        else 0.0,
        "decay": 1 - windows[-1] / windows[0] if windows[0] else 0.0,
        "sustained_min_window": min(windows),
        "problems": problems,
        "monitor": mon.samples,
        "vacuum_seconds": [round(v, 2) for v in mon.vacuums],
    }
    return res


NAMES = {
    "a": "(a)  raw one-statement claim (queue._CLAIM_SQL)",
    "b": "(b)  case_claim_next service (statement + audit)",
    "c": "(c)  ORM idiom + audit (baseline for b)",
    "c2": "(c') ORM idiom, no audit (baseline for a)",
    "d": "(d)  proposal: statement + audit in one SQL call",
    "e": "(e)  proposal: claim + unchained audit row, 1 stmt",
}


def print_result(r: dict[str, Any]) -> None:
    print(
        f"{NAMES[r['variant']]:50s} tuning={r['tuning']:10s} {r['seconds']:.0f}s "
        f"{r['rate']:8.0f} claims/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
        f"max {r['max_ms']:7.1f} ms  decay {r['decay'] * 100:+5.1f} %  "
        f"min window {r['sustained_min_window']:.0f}/s  "
        f"{'OK' if not r['problems'] else 'FAIL ' + '; '.join(r['problems'])}",
        flush=True,
    )
    if r["db_slots"]:
        print(
            f"     {r['db_slots']} in-flight slots: claim time without the slot wait "
            f"p50 {r['stmt_p50_ms']:.2f} ms p99 {r['stmt_p99_ms']:.2f} ms",
            flush=True,
        )
    print(f"     windows (claims/s per 10 s): {r['windows']}", flush=True)
    if r["monitor"]:
        dead = [s["dead"] for s in r["monitor"]]
        print(
            f"     dead tuples per window: {dead}; autovacuums {r['monitor'][-1]['autovac']}, "
            f"manual vacuums {len(r['vacuum_seconds'])} "
            f"(s each: {r['vacuum_seconds'][:6]}{'...' if len(r['vacuum_seconds']) > 6 else ''}); "
            f"heap {r['monitor'][-1]['heap_mb']} MB, queue index {r['monitor'][-1]['qidx_mb']} MB",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--short", action="store_true", help="20k cases, 8 claimers, 10 s/variant")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--claimers", type=int, default=64)
    ap.add_argument("--procs", type=int, default=4, help="claimer processes (threads split)")
    ap.add_argument("--seconds", type=float, default=600, help="sustained variant duration")
    ap.add_argument("--variant-seconds", type=float, default=None, help="other variants")
    ap.add_argument("--variants", default="c2,a,c,b,d,e", help="comma list of a,b,c,c2,d,e")
    ap.add_argument("--sustained", default="a", help="variant run for --seconds")
    ap.add_argument("--tuning", default="vacuum", choices=sorted(TUNING_SQL))
    ap.add_argument(
        "--also-tunings",
        default="",
        help="comma list: also run the sustained variant for --variant-seconds with these",
    )
    ap.add_argument("--vacuum-every", type=float, default=10.0)
    ap.add_argument(
        "--db-slots",
        type=int,
        default=0,
        help="at most this many claims in flight (a shared semaphore, like a small DB pool); "
        "0 = every claimer has its own connection in flight",
    )
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--drop", action="store_true", help="drop the bench database at the end")
    args = ap.parse_args()
    if args.short:
        args.cases, args.claimers, args.seconds = 20_000, 8, 10.0
        args.variant_seconds = 10.0
    vsec = args.variant_seconds if args.variant_seconds is not None else args.seconds

    setup_django()
    user_ids = ensure_users()
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
        f"autovacuum_naptime={nap}; {os.cpu_count()} cores; claimers={args.claimers} "
        f"({args.procs} processes x threads)",
        flush=True,
    )

    results = []
    plan = [(v, vsec, args.tuning) for v in args.variants.split(",") if v != args.sustained]
    if args.sustained in args.variants.split(","):
        plan.append((args.sustained, args.seconds, args.tuning))
    for tuning in filter(None, args.also_tunings.split(",")):
        plan.append((args.sustained, vsec, tuning))
    for variant, secs, tuning in plan:
        cases = args.cases
        if not args.short and cases < secs * 4000:
            cases = int(secs * 4000)
            print(
                f"  {variant}: {secs:.0f} s could drain {args.cases:,} cases: loading {cases:,}",
                flush=True,
            )
        r = run_variant(
            variant,
            cases=cases,
            claimers=args.claimers,
            procs=args.procs,
            seconds=secs,
            tuning=tuning,
            vacuum_every=args.vacuum_every,
            user_ids=user_ids,
            check_chain=args.short,
            db_slots=args.db_slots,
        )
        print_result(r)
        results.append(r)

    by = {(r["variant"], r["tuning"], r["seconds"]): r for r in results}
    best = {}
    for r in results:
        if r["tuning"] == args.tuning:
            best.setdefault(r["variant"], r)
            if r["seconds"] > best[r["variant"]]["seconds"]:
                best[r["variant"]] = r
    print("\nRatios against the same-run baseline (mean claims/s over each run):")
    for cand, base in (("a", "c2"), ("b", "c"), ("d", "c"), ("e", "c"), ("a", "c"), ("b", "c2")):
        if cand in best and base in best:
            print(
                f"  {NAMES[cand][:4]} / {NAMES[base][:4]}: "
                f"{best[cand]['rate'] / best[base]['rate']:.2f}x "
                f"({best[cand]['rate']:.0f} vs {best[base]['rate']:.0f} claims/s)"
            )
    failed = any(r["problems"] for r in results)
    if not args.short and args.sustained in best:
        s = best[args.sustained]
        base = best.get("c2")
        checks = {
            ">= 3000 claims/s": s["rate"] >= 3000,
            "p99 <= 10 ms": s["p99_ms"] <= 10,
            "decay <= 20 %": s["decay"] <= 0.20,
            ">= 2.9x ORM idiom": base is not None and s["rate"] >= 2.9 * base["rate"],
        }
        print(
            f"\nTargets for ({args.sustained}), {s['seconds']:.0f} s: "
            + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items())
        )
        failed = failed or not all(checks.values())
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"args": vars(args), "results": results, "keys": [list(k) for k in by]}, indent=1
            )
        )
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
