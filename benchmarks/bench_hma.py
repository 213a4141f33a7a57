"""Benchmark: HMA's GET /m/raw_lookup for PDQ over a large bank, through gunicorn, against a
trivial authenticated endpoint and against the old path of the same lookup (every middleware,
DRF, the token read per request, DRF's history throttle), served by the same gunicorn in the
same run.

    python benchmarks/bench_hma.py                        # 10 M hashes, 3 x 30 s per endpoint
    python benchmarks/bench_hma.py --quick                # 200 k hashes, 5 s: a smoke test
    python benchmarks/bench_hma.py --hashes 1000000 --seconds 20 --json /tmp/hma.json
    # set up 10 M once (≈15 min), then measure again whenever the machine is quiet:
    python benchmarks/bench_hma.py --workdir /var/tmp/bench-hma
    python benchmarks/bench_hma.py --workdir /var/tmp/bench-hma --reuse

What it does (everything is created here and removed again, also on Ctrl-C, unless --workdir
keeps the database, the index and the tokens for --reuse):

1. Its own PostgreSQL database (`safeguard_bench_hma`, or `…_tmp` without --workdir;
   BENCH_DB_NAME to change) and Redis database (--redis-db, flushed before and after);
   `manage.py migrate`; one platform token per client connection (create_api_token).
2. An HMA bank `HMA_BENCH` with one PDQ list, filled with N synthetic hashes: seeded, uniformly
   random 256-bit codes with 1-3 neighbours of every even query planted at distances 0..31
   (bench_matching.make_data's recipe; never a real list), written by COPY as KnownHash rows.
3. The list's index is built once, outside the web server, by `bank_load` in a management
   shell (timed), into SAFEGUARD_INDEX_DIR; every gunicorn worker memory-maps those files, as
   production workers do.
4. gunicorn serves the production entry point (config.wsgi: hma.wsgi in front of Django's
   handler) with config.urls plus extra routes. GET /api/bench/trivial: an APIView with
   the project's authentication (token), permission (IsAuthenticated) and throttle, returning
   {} — the cost of an authenticated API request that does no work. GET
   /api/bench/drf/m/raw_lookup: the DRF view of /m/raw_lookup with the throttle it had before
   the fixed window (DRF's pickled history), at a path the lean path (hma.fastpath) does not
   take — the old path. GET /api/bench/middleware/m/raw_lookup: handed to Django's handler as
   /m/raw_lookup, answered by the fast-path middleware — the lean path as it was before
   hma.wsgi. /m/raw_lookup itself is answered by hma.wsgi.
5. Correctness: a sample of queries through every lookup path (include_distance=true) must
   equal numpy brute force over the same codes (ids and distances); exit 1 on any difference.
6. Closed loop, --connections keep-alive clients (in --client-procs processes), each endpoint
   --rounds times for --seconds, alternating trivial/old/middleware/lean so drift hits all:
   throughput, p50/p99 latency measured at the client, and the server's CPU per request
   (gunicorn's processes and this database's PostgreSQL backends, from /proc), with the
   CPU of Redis and of the clients beside it. The clients (--client raw, the default) are one
   event loop per process over raw keep-alive sockets, one request in flight per connection:
   they share the two cores with the server, and http.client threads (--client http, the
   runs before 2026-11-30) cost several times more CPU per request. Then each endpoint over one
   connection, for latency without queueing. The result is lookups/s, and the same-run ratios
   (throughput, and server CPU per request) of lean lookup to trivial, to the old path and to
   the middleware path.

Only synthetic data; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import multiprocessing as mp
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.matching.index import brute_force  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
DB_NAME = os.environ.get("BENCH_DB_NAME", "safeguard_bench_hma")
HOST = "127.0.0.1"
BANK = "HMA_BENCH"
OLD_ROUTE = "/api/bench/drf/m/raw_lookup"
MIDDLEWARE_ROUTE = "/api/bench/middleware/m/raw_lookup"
RADIUS = 31

# The bench-only site, generated into the temp dir: config.urls plus the trivial endpoint.
TRIVIAL_MODULE = '''
from django.contrib.auth.decorators import login_not_required
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler404, urlpatterns as site  # noqa: F401


from rest_framework.throttling import SimpleRateThrottle

from core.throttling import TokenRateThrottle
from hma.api import RawLookupApi


class TrivialApi(APIView):
    """Authentication, permission and throttle as every API view; no work."""

    def get(self, request):
        return Response({})


class HistoryThrottle(TokenRateThrottle):
    """The per-token throttle as it was before the fixed window: DRF's SimpleRateThrottle,
    which keeps the bucket's request times as a pickled list in the cache."""

    allow_request = SimpleRateThrottle.allow_request
    wait = SimpleRateThrottle.wait

    def get_cache_key(self, request, view):
        return super().get_cache_key(request, view) + ":history"


class OldRawLookupApi(RawLookupApi):
    """The old path: the DRF view behind every middleware, token read per request, the
    history throttle. Its own path, so the lean path (hma.fastpath) does not take it."""

    throttle_classes = [HistoryThrottle]


# Beside HMA's routes (the first in config.urls), so all resolve after the same patterns.
bench = [
    path("api/bench/trivial", login_not_required(TrivialApi.as_view())),
    path("api/bench/drf/m/raw_lookup", OldRawLookupApi.as_view()),
]
at = next(
    i
    for i, p in enumerate(site)
    if getattr(getattr(p, "urlconf_name", None), "__name__", None) == "hma.urls"
)
urlpatterns = [*site[:at], *bench, *site[at:]]
'''
WSGI_MODULE = """
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django

django.setup()
from django.conf import settings

settings.ROOT_URLCONF = "bench_hma_urls"
# The production entry point: Django's handler behind hma.wsgi's lookup path.
from config.wsgi import application as lean, django_application  # noqa: E402

MIDDLEWARE_ROUTE = "/api/bench/middleware/m/raw_lookup"


def application(environ, start_response):
    # The lookup through Django's handler, answered by the fast-path middleware (the lean
    # path before hma.wsgi): a path of its own, handed to Django as /m/raw_lookup.
    if environ.get("PATH_INFO") == MIDDLEWARE_ROUTE:
        environ["PATH_INFO"] = "/m/raw_lookup"
        return django_application(environ, start_response)
    return lean(environ, start_response)
"""


class SetupError(Exception):
    pass


# --- Data -------------------------------------------------------------------------------------


def make_data(n: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random PDQ codes plus queries; even queries get 1-3 planted neighbours."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, (n_queries, 32), dtype=np.uint8)
    for qi in range(0, n_queries, 2):
        for _ in range(int(rng.integers(1, 4))):
            distance = int(rng.integers(0, RADIUS + 1))
            bits = np.unpackbits(queries[qi])
            bits[rng.choice(256, distance, replace=False)] ^= 1
            codes[int(rng.integers(0, n))] = np.packbits(bits)
    # Identical codes would be one list entry (unique per list): keep the first of each.
    _, first = np.unique(codes.view("V32").ravel(), return_index=True)
    return codes[np.sort(first)], queries


class _CopyStream(io.RawIOBase):
    """KnownHash rows as COPY text, produced chunk by chunk (10 M rows never sit in memory)."""

    def __init__(
        self, codes: np.ndarray, first_id: int, list_id: int, created: str, changed: bool
    ) -> None:
        self.codes, self.first_id, self.list_id, self.created = codes, first_id, list_id, created
        # KnownHash.changed_at (moderation 0018), stamped by a trigger that COPY skips here.
        self.extra = f"\t{created}" if changed else ""
        self.row = 0
        self.chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        rows = self.codes[self.row : self.row + 100_000]
        hexes = rows.tobytes().hex()
        tail = f"\t\t{{}}\tf\t\\N\t\\N\t\t\\N\t{self.created}{self.extra}\n"
        head = f"\t{self.list_id}\t"
        start = self.first_id + self.row
        text = "".join(
            f"{start + i}{head}{hexes[64 * i : 64 * i + 64]}{tail}" for i in range(len(rows))
        )
        self.chunk = memoryview(text.encode())
        self.row += len(rows)

    def readinto(self, target: Any) -> int:
        if not self.chunk and self.row < len(self.codes):
            self._next_chunk()
        size = min(len(target), len(self.chunk))
        target[:size] = self.chunk[:size]
        self.chunk = self.chunk[size:]
        return size


# --- The stack --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, tmp: Path, redis_url: str, args: argparse.Namespace) -> None:
        self.tmp, self.args = tmp, args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        var = tmp / "var"
        for sub in ("evidence", "hash-index", "staticfiles", "keys"):
            (var / sub).mkdir(parents=True, exist_ok=True)
        (tmp / "bench_hma_urls.py").write_text(TRIVIAL_MODULE)
        (tmp / "bench_hma_wsgi.py").write_text(WSGI_MODULE)
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}",
            "DATABASE_URL": f"{PG_URL}/{DB_NAME}",
            "REDIS_URL": redis_url,
            "SECRET_KEY": secrets.token_urlsafe(40),
            "DEBUG": "false",
            "DATABASE_CONN_MAX_AGE": "60",
            # The limiter stays on (its Redis round trip is in every request, both endpoints);
            # per second, so DRF's per-token history of request times stays short.
            "SAFEGUARD_API_RATE": "100000/s",
            "SAFEGUARD_VAR_DIR": str(var),
            "EVIDENCE_ROOT": str(var / "evidence"),
            "SAFEGUARD_INDEX_DIR": str(var / "hash-index"),
            "STATIC_ROOT": str(var / "staticfiles"),
            "SAFEGUARD_SIGNING_KEY_FILE": str(var / "keys" / "key.pem"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        for name in ("CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
            self.env.pop(name, None)

    def manage(self, *argv: str, timeout: float = 3600) -> str:
        proc = subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise SetupError(f"manage.py {argv[0]} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def start(self) -> None:
        log = (self.tmp / "gunicorn.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "bench_hma_wsgi:application",
                "--bind",
                f"{HOST}:{self.port}",
                "--workers",
                str(self.args.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(self.args.threads),
                "--keep-alive",
                "30",
                "--timeout",
                "120",
                "--backlog",
                "2048",
                "--error-logfile",
                "-",
                "--log-level",
                "warning",
            ],
            cwd=self.tmp,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"gunicorn exited:\n{(self.tmp / 'gunicorn.log').read_text()}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.3)
        raise SetupError("gunicorn did not answer /healthz")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _database(*statements: str) -> None:
    admin = psycopg2.connect(f"{PG_URL}/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    admin.close()


def create_database() -> None:
    _database(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    _database(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def seed_bank(stack: Stack, codes: np.ndarray, tokens: int) -> tuple[list[str], int, float]:
    """The bank and its list (through the services), the rows (COPY), the index (bank_load,
    timed), and the platform tokens. Returns (token keys, first KnownHash id, build seconds)."""
    script = (
        "import io, json, time\n"
        "from django.core.management import call_command\n"
        "from core.audit import SystemActor\n"
        "from hma.services import bank_create, bank_signals_add\n"
        "from hma.models import BankList\n"
        "actor = SystemActor('bench')\n"
        f"bank_create(name={BANK!r}, matching_enabled_ratio=1.0, actor=actor)\n"
        f"bank_signals_add(name={BANK!r}, signals={{'pdq': 'ab' * 32}}, actor=actor)\n"
        "link = BankList.objects.get(bank__name=" + repr(BANK) + ")\n"
        "keys = []\n"
        f"for i in range({tokens}):\n"
        "    out = io.StringIO()\n"
        "    call_command('create_api_token', f'bench-hma-{i}', stdout=out)\n"
        "    keys.append(out.getvalue().strip())\n"
        "print('SEED=' + json.dumps({'keys': keys, 'list': link.hash_list_id}))\n"
    )
    out = stack.manage("shell", "-c", script)
    seeded = json.loads(next(line[5:] for line in out.splitlines() if line.startswith("SEED=")))
    list_id = seeded["list"]
    conn = psycopg2.connect(f"{PG_URL}/{DB_NAME}")
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM moderation_knownhash WHERE hash_list_id = %s", [list_id])
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks left before ALTER
        cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM moderation_knownhash")
        first_id = cur.fetchone()[0]
        started = time.perf_counter()
        # Loading 10 M rows into a table with its secondary indexes and foreign-key triggers
        # is row-by-row work: drop the indexes, load with triggers off (this run's own
        # database; superuser), and build the indexes again in one sort each.
        table = "moderation_knownhash"
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'u'",
            [table],
        )
        constraints = cur.fetchall()
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint"
            " WHERE conrelid = %s::regclass)",
            [table, table],
        )
        indexes = cur.fetchall()
        for name, _ in constraints:
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_name = %s AND column_name = 'changed_at'",
            [table],
        )
        changed = cur.fetchone() is not None
        cur.execute("SET session_replication_role = replica")
        cur.copy_expert(
            "COPY moderation_knownhash (id, hash_list_id, value, category, metadata, low_quality,"
            " withdrawn_at, quarantined_at, quarantine_reason, released_at, created_at"
            + (", changed_at" if changed else "")
            + ") FROM STDIN",
            _CopyStream(codes, first_id, list_id, "2026-01-01 00:00:00+00", changed),
            size=1 << 20,
        )
        cur.execute("SET session_replication_role = DEFAULT")
        loaded = time.perf_counter() - started
        for _, definition in indexes:
            cur.execute(definition)
        for name, definition in constraints:
            cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cur.execute(f"ANALYZE {table}")
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('moderation_knownhash', 'id'), %s)",
            [first_id + len(codes)],
        )
        # A new version: the rows changed behind the services' back.
        cur.execute("UPDATE moderation_hashlist SET version = version + 1 WHERE id = %s", [list_id])
        print(
            f"  COPY of {len(codes):,} rows: {loaded:.1f} s, indexes "
            f"{time.perf_counter() - started - loaded:.1f} s",
            flush=True,
        )
    conn.close()
    out = stack.manage(
        "shell",
        "-c",
        "import time\n"
        "from moderation.matching.banks import bank_load\n"
        "from moderation.models import HashList\n"
        f"hl = HashList.objects.get(pk={list_id})\n"
        "t = time.perf_counter(); bank = bank_load(hl); t = time.perf_counter() - t\n"
        # A layered bank (base + delta, moderation.matching.banks): the base's size.
        "index = getattr(bank.index, 'base', bank.index)\n"
        "print(f'BUILD={t} {index.nbytes()} {len(bank.ids)}')\n",
    )
    build = next(line[6:] for line in out.splitlines() if line.startswith("BUILD="))
    seconds, nbytes, size = build.split()
    print(
        f"  index: {int(size):,} hashes, {int(nbytes) / 1e6:,.0f} MB, built in "
        f"{float(seconds):.1f} s",
        flush=True,
    )
    return seeded["keys"], first_id, float(seconds)


# --- Load -------------------------------------------------------------------------------------


def _response_end(buf: bytearray) -> tuple[int, int, bool] | None:
    """(status, end, close) of the complete HTTP/1.1 response at the start of ``buf``, or None
    while it is incomplete: its end from Content-Length, or from the last chunk; ``close`` when
    the server ends the connection after it."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buf[:head_end]).lower()
    status = int(head[9:12])
    close = b"\r\nconnection: close" in head
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        line_end = head.find(b"\r\n", at + 2)
        end = head_end + 4 + int(head[at + 17 : line_end if line_end >= 0 else len(head)])
        return (status, end, close) if len(buf) >= end else None
    if b"\r\ntransfer-encoding: chunked" not in head:
        raise ValueError("a response without a length")
    pos = head_end + 4
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2 + size + 2
        if len(buf) < pos:
            return None
        if size == 0:
            return status, pos, close


def _raw_client_proc(
    port: int,
    keys: list[str],
    paths: list[str],
    seconds: float,
    start_at: float,
    out: Any,
) -> None:
    """One client process, one event loop: a keep-alive socket per key, one request in flight
    on each (no pipelining), requests made once as bytes, responses read by their length.
    Costs the shared cores a few tens of µs per request, against several hundred for a
    thread per connection on http.client (benchmarks/HMA.md)."""
    poller = select.epoll()
    conns: dict[int, list[Any]] = {}

    def connect(index: int, n: int) -> list[Any]:
        sock = socket.create_connection((HOST, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        head = f"Host: {HOST}:{port}\r\nAuthorization: Token {keys[index]}\r\n"
        requests = [
            f"GET {path} HTTP/1.1\r\n{head}Accept: application/json\r\n\r\n".encode()
            for path in paths
        ]
        # socket, buffer, sent at, request number, requests, key index
        conn = conns[sock.fileno()] = [sock, bytearray(), 0.0, n, requests, index]
        poller.register(sock.fileno(), select.EPOLLIN)
        return conn

    def send(conn: list[Any]) -> None:
        conn[2] = time.perf_counter()
        conn[0].sendall(conn[4][conn[3] % len(conn[4])])

    for index in range(len(keys)):
        connect(index, index * 7919)
    latencies: list[float] = []
    errors = 0
    while time.time() < start_at:
        time.sleep(0.001)
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    for conn in conns.values():
        send(conn)
    while conns:
        for fd, _ in poller.poll(30):
            conn = conns[fd]
            try:
                data = conn[0].recv(262144)
            except OSError:
                data = b""
            done = None if not data else (conn[1].extend(data) or _response_end(conn[1]))
            if data and done is None:
                continue
            now = time.perf_counter()
            if done is not None:
                latencies.append(now - conn[2])
                errors += done[0] != 200
                del conn[1][: done[1]]
                conn[3] += 1
            else:
                errors += 1  # closed under a request
            if done is None or done[2] or now >= deadline:
                poller.unregister(fd)
                conn[0].close()
                del conns[fd]
                if now < deadline:
                    send(connect(conn[5], conn[3]))
                continue
            send(conn)
    out.put((latencies, errors, time.process_time() - cpu))


def _client_proc(
    port: int,
    keys: list[str],
    paths: list[str],
    seconds: float,
    start_at: float,
    out: Any,
) -> None:
    """One client process: one thread per key, each a keep-alive loop over the paths."""
    latencies: list[list[float]] = [[] for _ in keys]
    errors = [0 for _ in keys]

    def loop(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        headers = {"Authorization": f"Token {keys[index]}", "Accept": "application/json"}
        n = index * 7919
        while time.time() < start_at:
            time.sleep(0.001)
        deadline = start_at + seconds
        mine = latencies[index]
        while True:
            now = time.perf_counter()
            if time.time() >= deadline:
                break
            try:
                conn.request("GET", paths[n % len(paths)], headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[index] += 1
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                continue
            mine.append(time.perf_counter() - now)
            n += 1
        conn.close()

    cpu = time.process_time()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(([t for lat in latencies for t in lat], sum(errors), time.process_time() - cpu))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_pids() -> list[int]:
    """The Redis server's processes (shared with the machine: reported, not in server CPU)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip().startswith("redis-server"):
                pids.append(int(comm.parent.name))
    return pids


def server_processes(master: int) -> list[int]:
    """gunicorn's master and workers, and the PostgreSQL backends serving this run's database:
    the server side of every request (the clients are not counted)."""
    return [pid for group in server_groups(master).values() for pid in group]


def server_groups(master: int) -> dict[str, list[int]]:
    """server_processes by kind: {"gunicorn": [...], "postgres": [...]}."""
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == master:
                pids.append(int(stat.parent.name))
    conn = psycopg2.connect(f"{PG_URL}/{DB_NAME}")
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DB_NAME],
        )
        backends = [row[0] for row in cur.fetchall()]
    conn.close()
    return {"gunicorn": pids, "postgres": backends}


def run_load(
    port: int,
    keys: list[str],
    paths: list[str],
    seconds: float,
    procs: int,
    master: int = 0,
    client: str = "raw",
) -> dict[str, Any]:
    """A closed-loop run; with ``master`` (gunicorn's pid), also the server's CPU per request,
    split into gunicorn, PostgreSQL, Redis (not in the server's figure: shared) and the
    clients (this benchmark's own load generator, on the same cores)."""
    groups_before = server_groups(master) if master else {}
    groups_before["redis"] = redis_pids() if master else []
    before = {pid: _cpu_seconds(pid) for pids in groups_before.values() for pid in pids}
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 1.0
    groups = [keys[i::procs] for i in range(procs)]
    workers = [
        ctx.Process(
            target=_raw_client_proc if client == "raw" else _client_proc,
            args=(port, group, paths, seconds, start_at, queue),
        )
        for group in groups
        if group
    ]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    errors = 0
    client_cpu = 0.0
    for _ in workers:
        lat, err, used_cpu = queue.get()
        latencies += lat
        errors += err
        client_cpu += used_cpu
    for worker in workers:
        worker.join()
    ms = np.array(latencies) * 1000
    cpu = None
    split: dict[str, float] = {}
    if master and latencies:
        groups = server_groups(master)
        groups["redis"] = groups_before["redis"]
        for name, pids in groups.items():
            used = sum(max(0.0, _cpu_seconds(pid) - before.get(pid, 0.0)) for pid in pids)
            split[name] = used / len(latencies) * 1000
        split["client"] = client_cpu / len(latencies) * 1000
        cpu = split["gunicorn"] + split["postgres"]
    return {
        "server_cpu_ms_per_request": cpu,
        "cpu_ms_per_request_by_process": split,
        "requests": len(latencies),
        "errors": errors,
        "per_second": len(latencies) / seconds,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "mean_ms": float(ms.mean()) if len(ms) else None,
    }


def verify(
    port: int, key: str, queries: np.ndarray, codes: np.ndarray, first_id: int, route: str
) -> int:
    """Raw lookups of a sample of queries against numpy brute force; returns mismatches."""
    conn = http.client.HTTPConnection(HOST, port, timeout=180)
    mismatches = 0
    for query in queries:
        conn.request(
            "GET",
            f"{route}?signal_type=pdq&include_distance=true&signal={query.tobytes().hex()}",
            headers={"Authorization": f"Token {key}"},
        )
        response = conn.getresponse()
        body = json.loads(response.read())
        got = sorted((m["bank_content_id"], int(m["distance"])) for m in body["matches"])
        want = sorted((first_id + row, d) for row, d in brute_force(codes, query, RADIUS))
        if response.status != 200 or got != want:
            mismatches += 1
    conn.close()
    return mismatches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hashes", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--verify", type=int, default=200, help="queries checked vs brute force")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--client",
        choices=("raw", "http"),
        default="raw",
        help="load generator: raw keep-alive sockets in one event loop per process (default), "
        "or a thread per connection on http.client (the runs before 2026-11-30)",
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--redis-db", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="200 k hashes, 1 round of 5 s")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the database, index and tokens here (not dropped), for --reuse",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="measure again on --workdir's data: no setup"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.hashes, args.seconds, args.rounds, args.verify = 200_000, 5.0, 1, 100

    import redis

    global DB_NAME
    if args.workdir is None:
        # A throw-away run must not drop the database a --workdir run keeps for --reuse.
        DB_NAME = f"{DB_NAME}_tmp"
    redis_url = f"{REDIS_BASE}/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="bench-hma-"))
    tmp.mkdir(parents=True, exist_ok=True)
    state_file = tmp / "state.json"
    stack = Stack(tmp, redis_url, args)
    print(f"Synthetic PDQ list: {args.hashes:,} hashes (seed {args.seed})", flush=True)
    codes, queries = make_data(args.hashes, args.queries, args.seed)
    result: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "load_average_before": os.getloadavg(),
    }
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    reuse = (
        args.reuse
        and state.get("hashes") == len(codes)
        and state.get("seed") == args.seed
        and len(state.get("keys", [])) >= args.connections
    )
    try:
        if reuse:
            keys, first_id, build_seconds = state["keys"], state["first_id"], state["build"]
            print("  reusing the database and index of the last run in --workdir", flush=True)
        else:
            create_database()
            stack.manage("migrate", "--noinput")
            keys, first_id, build_seconds = seed_bank(stack, codes, args.connections)
            state = {"hashes": len(codes), "seed": args.seed, "keys": keys}
            state |= {"first_id": first_id, "build": build_seconds}
            state_file.write_text(json.dumps(state))
        keys = keys[: args.connections]
        stack.start()
        paths = [
            f"/m/raw_lookup?signal_type=pdq&include_distance=true&signal={q.tobytes().hex()}"
            for q in queries
        ]
        # The same queries through the old path: every middleware, DRF, the token read per
        # request and the history throttle (OldRawLookupApi in the bench's URL conf).
        old_paths = [OLD_ROUTE + p.removeprefix("/m/raw_lookup") for p in paths]
        # The same lookups through Django's handler and the fast-path middleware
        # (hma.fastpath), i.e. without hma.wsgi: the bench's WSGI module routes them.
        middleware_paths = [MIDDLEWARE_ROUTE + p.removeprefix("/m/raw_lookup") for p in paths]
        endpoints = {
            "trivial": ["/api/bench/trivial"],
            "old_path": old_paths,
            "middleware": middleware_paths,
            "raw_lookup": paths,
        }
        mismatches = 0
        for route in ("/m/raw_lookup", MIDDLEWARE_ROUTE, OLD_ROUTE):
            wrong = verify(stack.port, keys[0], queries[: args.verify], codes, first_id, route)
            print(
                f"  verified {args.verify} queries through {route} against brute force: "
                f"{wrong} mismatches",
                flush=True,
            )
            mismatches += wrong
        # Warm every worker (its mmap and connections) before measuring.
        warm = max(3.0, min(10.0, args.seconds / 2))
        run_load(stack.port, keys, paths, warm, args.client_procs, client=args.client)
        run_load(stack.port, keys, old_paths, 3.0, args.client_procs, client=args.client)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in endpoints}
        for n in range(args.rounds):
            for name, endpoint in endpoints.items():
                measured = run_load(
                    stack.port,
                    keys,
                    endpoint,
                    args.seconds,
                    args.client_procs,
                    stack.proc.pid,
                    client=args.client,
                )
                rounds[name].append(measured)
                split = measured["cpu_ms_per_request_by_process"]
                print(
                    f"  round {n + 1} {name:>10}: {measured['per_second']:8.1f}/s  p50 "
                    f"{measured['p50_ms']:.2f} ms  p99 {measured['p99_ms']:.2f} ms  server CPU "
                    f"{measured['server_cpu_ms_per_request']:.2f} ms/request  "
                    f"errors {measured['errors']}  (load {os.getloadavg()[0]:.1f})\n"
                    "    CPU ms/request: " + "  ".join(f"{k} {v:.3f}" for k, v in split.items()),
                    flush=True,
                )
        # Latency without queueing: one connection, one request at a time.
        single: dict[str, dict[str, Any]] = {}
        for name, endpoint in endpoints.items():
            single[name] = run_load(
                stack.port,
                keys[:1],
                endpoint,
                max(5.0, args.seconds / 3),
                1,
                stack.proc.pid,
                client=args.client,
            )
            print(
                f"  one connection {name:>10}: p50 {single[name]['p50_ms']:.2f} ms  p99 "
                f"{single[name]['p99_ms']:.2f} ms  ({single[name]['per_second']:.0f}/s, server "
                f"CPU {single[name]['server_cpu_ms_per_request']:.2f} ms/request)",
                flush=True,
            )
        summary = {}
        for name, runs in rounds.items():
            summary[name] = {
                key: float(np.mean([r[key] for r in runs]))
                for key in (
                    "per_second",
                    "p50_ms",
                    "p99_ms",
                    "mean_ms",
                    "server_cpu_ms_per_request",
                )
            } | {
                "errors": sum(r["errors"] for r in runs),
                "cpu_ms_per_request_by_process": {
                    kind: float(np.mean([r["cpu_ms_per_request_by_process"][kind] for r in runs]))
                    for kind in runs[0]["cpu_ms_per_request_by_process"]
                },
            }
        # Throughput ratios (a / b), and CPU ratios as b's CPU over a's (above 1: a is cheaper).
        ratios = {}
        for a, b in (
            ("raw_lookup", "trivial"),
            ("raw_lookup", "old_path"),
            ("raw_lookup", "middleware"),
            ("middleware", "trivial"),
            ("old_path", "trivial"),
        ):
            ratios[f"{a}/{b}"] = {
                "throughput": summary[a]["per_second"] / summary[b]["per_second"],
                "cpu": summary[b]["server_cpu_ms_per_request"]
                / summary[a]["server_cpu_ms_per_request"],
            }
        # What the server's CPU per lookup allows on this machine's cores, clients elsewhere.
        capacity = os.cpu_count() * 1000 / summary["raw_lookup"]["server_cpu_ms_per_request"]
        result.update(
            load_average_after=os.getloadavg(),
            hashes=len(codes),
            build_seconds=build_seconds,
            mismatches=mismatches,
            rounds=rounds,
            one_connection=single,
            summary=summary,
            ratios=ratios,
            lookups_per_second_by_cpu=capacity,
        )
        print(f"\n{len(codes):,} hashes, {args.connections} connections, {args.rounds} rounds:")
        for name, row in summary.items():
            print(
                f"  {name:>10}: {row['per_second']:7.0f}/s  p50 {row['p50_ms']:.2f} ms  p99 "
                f"{row['p99_ms']:.2f} ms  server CPU {row['server_cpu_ms_per_request']:.2f} ms/request"
                "  ("
                + ", ".join(f"{k} {v:.3f}" for k, v in row["cpu_ms_per_request_by_process"].items())
                + ")"
            )
        for pair, ratio in ratios.items():
            print(
                f"  {pair:>20}: throughput ratio {ratio['throughput']:.2f}, "
                f"CPU ratio {ratio['cpu']:.2f}"
            )
        print(
            f"  {os.cpu_count()} cores at {summary['raw_lookup']['server_cpu_ms_per_request']:.2f}"
            f" ms of server CPU per lookup allow {capacity:.0f} lookups/s (clients elsewhere)",
            flush=True,
        )
    finally:
        stack.stop()
        redis.Redis.from_url(redis_url).flushdb()
        if args.workdir is None:
            drop_database()
        if args.keep or args.workdir is not None:
            print(f"kept {tmp}" + (f" and database {DB_NAME}" if args.workdir else ""))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    errors = result.get("summary", {}).get("raw_lookup", {}).get("errors", 1)
    return 1 if result.get("mismatches", 1) or errors else 0


if __name__ == "__main__":
    sys.exit(main())
