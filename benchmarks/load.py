"""Bounded load test of the real Safeguard stack on this machine: gunicorn + Celery + PostgreSQL
+ Redis, driven over HTTP by intake clients and moderator clients.

    python benchmarks/load.py                  # 60 s, 4 intake clients, 16 moderators
    python benchmarks/load.py --short          # ~8 s, 2 intake, 4 moderators (CI smoke test;
                                               # one intake client one by one, one in batches)
    python benchmarks/load.py --seconds 120 --intake 8 --moderators 32
    python benchmarks/load.py --batch 100      # intake through POST /api/v1/items/batch
    python benchmarks/load.py --compare --baseline-ref 8458cda --moderators 0 --seconds 30
        # back to back on fresh stacks: one by one at the commit before issue 19 (baseline),
        # one by one now, batches of 100 now; prints each figure with its ratio to the first
        # (--compare-moderators 16: then the same three with 16 moderators, the full mix;
        # --also-ref REF: one by one at REF too; --bracket: the baseline again at the end,
        # ratios against the mean of its two runs; --compare-batch 0: no batch variant)
    python benchmarks/load.py --batch 20 --rate 40 --intake 2 --moderators 0
        # open loop: 40 items/s offered on a fixed schedule (intake -> hashed at a set load)

Every run ends with per-item figures over load + drain: items/s, CPU milliseconds per item for
gunicorn (web) and the Celery worker and the stack's PostgreSQL backends (from /proc),
transactions per item (pg_stat_database) and intake -> hashed p50/p95/p99. Queries per item are
counted exactly, in one process, by benchmarks/profile_intake.py.

What it does (everything is created here and removed again, also on Ctrl-C / SIGTERM):

1. Creates its own PostgreSQL database (`safeguard_load`, dropped afterwards) and flushes its own
   Redis database (db 12 by default, flushed before and after); a lock file serialises runs.
2. `manage.py migrate`, `manage.py create_api_token` (platform token), N moderator users in the
   Moderator group, each with a console token (`create_api_token NAME --user USER`, run through
   call_command in one process so setup stays short on 2 cores).
3. Starts gunicorn (config.wsgi, gthread workers, a free port on 127.0.0.1) and one Celery worker
   (`celery -A config worker -Q hashing,default,packets`) as subprocesses, with DATABASE_URL,
   REDIS_URL, SECRET_KEY, DEBUG=false and every writable path (SAFEGUARD_VAR_DIR,
   EVIDENCE_ROOT, SAFEGUARD_INDEX_DIR, STATIC_ROOT, signing key) under a temporary directory;
   waits for GET /healthz == 200.
4. For a fixed duration: K intake clients POST /api/v1/items (~50 % multipart with a small
   synthetic JPEG from moderation.media.synthetic, ~50 % JSON text/message items; unique
   external ids; ~10 % of JSON items share a subject account so they join an open case), and M
   moderator clients loop POST /api/v1/cases/next -> POST /api/v1/cases/{id}/decision
   {"outcome": "no_violation"} (POST .../release on 409). A sampler counts hashed media in the
   database once a second.
5. Drains: waits until no media is pending/processing (bounded), reads back a sample of items
   through GET /api/v1/items/{id}, then checks consistency in the database: no case decided
   twice, every decision the clients saw exists, every accepted item id exists with its external
   id and a case, no media left pending/processing/failed, the audit chain verifies
   (`manage.py verify_audit`), and no server-side traceback in the gunicorn or worker logs.

Exit status: 0 when there were no errors (any non-2xx response or transport error; 204 from an
empty queue is expected) and every consistency check passed; 1 otherwise; 2 on a setup failure.

Only synthetic data is used: images are generated gradients/shapes/noise, texts are fixed
placeholders. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.media.synthetic import synthetic_jpeg  # noqa: E402

PG_URL = os.environ.get("LOAD_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_BASE = os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379")
DB_NAME = os.environ.get("LOAD_DB_NAME", "safeguard_load")
LOCK_FILE = Path(tempfile.gettempdir()) / "safeguard-load.lock"
HOST = "127.0.0.1"
SOURCE = "loadtest"
# A few fixed placeholder texts (synthetic, no real content).
TEXTS = (
    "Synthetic load-test text: placeholder message number {n}.",
    "Synthetic load-test text: an account asks another to move to a private app ({n}).",
    "Synthetic load-test text: a comment flagged by a keyword filter ({n}).",
)
SHARED_SUBJECTS = 20  # --shared of the JSON items name one of these subject accounts


class SetupError(Exception):
    pass


# --- Measurements ---------------------------------------------------------------------------


@dataclass
class Stats:
    """Per-client measurements; merged at the end (no locking in the hot path)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    accepted: dict[int, str] = field(default_factory=dict)  # item id -> external id
    media_ids: list[int] = field(default_factory=list)  # item ids submitted with media
    claims: int = 0
    empty_claims: int = 0
    decisions: dict[int, int] = field(default_factory=dict)  # case id -> times decided (201)
    releases: int = 0

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        self.latencies.setdefault(endpoint, []).append(seconds)
        by_status = self.statuses.setdefault(endpoint, {})
        by_status[status] = by_status.get(status, 0) + 1

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < 20:
            self.errors.append(message)

    def merge(self, other: Stats) -> None:
        for key, values in other.latencies.items():
            self.latencies.setdefault(key, []).extend(values)
        for key, counts in other.statuses.items():
            mine = self.statuses.setdefault(key, {})
            for status, n in counts.items():
                mine[status] = mine.get(status, 0) + n
        self.error_count += other.error_count
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])
        self.accepted.update(other.accepted)
        self.media_ids.extend(other.media_ids)
        self.claims += other.claims
        self.empty_claims += other.empty_claims
        for case_id, n in other.decisions.items():
            self.decisions[case_id] = self.decisions.get(case_id, 0) + n
        self.releases += other.releases


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- HTTP client ------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to the local gunicorn, with a token."""

    RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self, port: int, token: str, stats: Stats, timeout: float = 60.0) -> None:
        self.port = port
        self.token = token
        self.stats = stats
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        return resp.status, data

    def call(
        self,
        endpoint: str,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> tuple[int, bytes]:
        """Send one request; record its latency; anything outside `ok` is an error.

        A request on a reused connection that the server had already closed (keep-alive race)
        is retried once on a fresh connection: the server never saw it.
        """
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        start = time.perf_counter()
        reused = self.conn is not None
        try:
            try:
                status, data = self._send(method, path, body, headers)
            except self.RETRYABLE:
                self.close()
                if not reused:
                    raise
                start = time.perf_counter()
                status, data = self._send(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            self.stats.record(endpoint, 0, time.perf_counter() - start)
            self.stats.error(f"{endpoint}: {type(exc).__name__}: {exc}")
            return 0, b""
        self.stats.record(endpoint, status, time.perf_counter() - start)
        if status not in ok:
            text = data[:300].decode(errors="replace")
            if text.lstrip().lower().startswith("<!doctype html"):
                text = "(an HTML error page, not the API's JSON error shape)"
            self.stats.error(f"{endpoint} {method} {path} -> {status}: {' '.join(text.split())}")
        return status, data


def multipart(
    fields: dict[str, str], file_field: str, filename: str, data: bytes
) -> tuple[bytes, str]:
    return multipart_files(fields, [(file_field, filename, data)])


def multipart_files(
    fields: dict[str, str], files: list[tuple[str, str, bytes]]
) -> tuple[bytes, str]:
    boundary = "----sgload" + uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for file_field, filename, data in files:
        parts.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
                f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- Clients ----------------------------------------------------------------------------------


def _wait_turn(stop: threading.Event, first: float, n: int, pace: float) -> None:
    """--rate: request n of a paced client is due at first + n * pace (open loop: a late
    request goes at once, and the schedule does not slip)."""
    if pace:
        stop.wait(max(0.0, first + n * pace - time.monotonic()))


def batch_intake_client(
    idx: int,
    port: int,
    token: str,
    images: list[bytes],
    run_id: str,
    deadline: float,
    stop: threading.Event,
    max_requests: int,
    stats: Stats,
    shared: float,
    batch: int,
    pace: float = 0.0,
    first: float = 0.0,
) -> None:
    """The same mix as `intake_client` (half JPEGs, half JSON text), `batch` items per
    POST /api/v1/items/batch (multipart: the items as JSON plus one file part per image)."""
    rng = random.Random(1000 + idx)
    client = Client(port, token, stats)
    endpoint = f"POST /api/v1/items/batch ({batch} items)"
    try:
        for r in range(max_requests):
            _wait_turn(stop, first, r, pace)
            if stop.is_set() or time.monotonic() >= deadline:
                break
            items: list[dict[str, Any]] = []
            files: list[tuple[str, str, bytes]] = []
            for k in range(batch):
                n = r * batch + k
                entry: dict[str, Any] = {"source": SOURCE, "external_id": f"{run_id}-{idx}-{n}"}
                if rng.random() < 0.5:
                    part = f"f{k}"
                    files.append(
                        (part, f"load-{idx}-{n}.jpg", images[(idx * 7919 + n) % len(images)])
                    )
                    entry.update(kind="image", media=part)
                else:
                    entry.update(
                        kind=rng.choice(("text", "message")), text=rng.choice(TEXTS).format(n=n)
                    )
                    if rng.random() < shared:
                        entry["subject_account_id"] = f"acct-{rng.randrange(SHARED_SUBJECTS)}"
                items.append(entry)
            body, ctype = multipart_files({"items": json.dumps(items)}, files)
            status, data = client.call(
                endpoint, "POST", "/api/v1/items/batch", body, ctype, ok=(200,)
            )
            if status != 200:
                continue
            for result, entry in zip(json.loads(data)["results"], items, strict=True):
                if result["status"] != 201:
                    stats.error(f"{endpoint}: item {result['index']} -> {result}")
                    continue
                item_id = result["item"]["id"]
                stats.accepted[item_id] = entry["external_id"]
                if "media" in entry:
                    stats.media_ids.append(item_id)
    finally:
        client.close()


def intake_client(
    idx: int,
    port: int,
    token: str,
    images: list[bytes],
    run_id: str,
    deadline: float,
    stop: threading.Event,
    max_requests: int,
    stats: Stats,
    shared: float,
    batch: int = 0,
    pace: float = 0.0,
    first: float = 0.0,
) -> None:
    """pace (--rate): seconds between this client's requests from `first` on (0: each request
    as soon as the previous one returned, a closed loop)."""
    if batch:
        batch_intake_client(
            idx,
            port,
            token,
            images,
            run_id,
            deadline,
            stop,
            max_requests,
            stats,
            shared,
            batch,
            pace,
            first,
        )
        return
    rng = random.Random(1000 + idx)
    client = Client(port, token, stats)
    try:
        for n in range(max_requests):
            _wait_turn(stop, first, n, pace)
            if stop.is_set() or time.monotonic() >= deadline:
                break
            external_id = f"{run_id}-{idx}-{n}"
            if rng.random() < 0.5:
                image = images[(idx * 7919 + n) % len(images)]
                body, ctype = multipart(
                    {"source": SOURCE, "external_id": external_id, "kind": "image"},
                    "media",
                    f"load-{idx}-{n}.jpg",
                    image,
                )
                endpoint, with_media = "POST /api/v1/items (multipart jpeg)", True
            else:
                payload: dict[str, Any] = {
                    "source": SOURCE,
                    "external_id": external_id,
                    "kind": rng.choice(("text", "message")),
                    "text": rng.choice(TEXTS).format(n=n),
                }
                if rng.random() < shared:
                    payload["subject_account_id"] = f"acct-{rng.randrange(SHARED_SUBJECTS)}"
                body, ctype = json.dumps(payload).encode(), "application/json"
                endpoint, with_media = "POST /api/v1/items (json)", False
            status, data = client.call(endpoint, "POST", "/api/v1/items", body, ctype, ok=(201,))
            if status == 201:
                item_id = json.loads(data)["id"]
                stats.accepted[item_id] = external_id
                if with_media:
                    stats.media_ids.append(item_id)
    finally:
        client.close()


def moderator_client(
    idx: int,
    port: int,
    token: str,
    deadline: float,
    stop: threading.Event,
    max_requests: int,
    stats: Stats,
) -> None:
    client = Client(port, token, stats)
    decision = json.dumps({"outcome": "no_violation"}).encode()
    try:
        for _ in range(max_requests):
            if stop.is_set() or time.monotonic() >= deadline:
                break
            status, data = client.call("POST /api/v1/cases/next", "POST", "/api/v1/cases/next")
            if status == 204:
                stats.empty_claims += 1
                stop.wait(0.2)  # empty queue: back off a little
                continue
            if status != 200:
                stop.wait(0.2)
                continue
            stats.claims += 1
            case_id = json.loads(data)["id"]
            status, _ = client.call(
                "POST /api/v1/cases/{id}/decision",
                "POST",
                f"/api/v1/cases/{case_id}/decision",
                decision,
                "application/json",
                ok=(201,),
            )
            if status == 201:
                stats.decisions[case_id] = stats.decisions.get(case_id, 0) + 1
            elif status == 409:
                client.call(
                    "POST /api/v1/cases/{id}/release",
                    "POST",
                    f"/api/v1/cases/{case_id}/release",
                )
                stats.releases += 1
    finally:
        client.close()


# --- Stack ------------------------------------------------------------------------------------


def pg_connect(dbname: str) -> Any:
    conn = psycopg2.connect(f"{PG_URL}/{dbname}", connect_timeout=3)
    conn.autocommit = True
    return conn


def drop_database() -> None:
    with contextlib.closing(pg_connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def create_database() -> None:
    drop_database()
    with contextlib.closing(pg_connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{DB_NAME}"')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_lock(wait: float) -> Iterator[None]:
    """One load run at a time on this machine: they share the database name and Redis db."""
    with LOCK_FILE.open("w") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SetupError(f"another load run holds {LOCK_FILE}") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Stack:
    """The subprocesses of one run; `stop()` always terminates every one of them."""

    def __init__(
        self,
        tmp: Path,
        redis_url: str,
        web_workers: int,
        web_threads: int,
        worker_concurrency: int,
        root: Path = ROOT,
    ) -> None:
        self.root = root
        self.tmp = tmp
        self.port = free_port()
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.worker_concurrency = worker_concurrency
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        var = tmp / "var"
        for sub in ("evidence", "hash-index", "staticfiles", "keys"):
            (var / sub).mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{PG_URL}/{DB_NAME}",
            "REDIS_URL": redis_url,
            "SECRET_KEY": secrets.token_urlsafe(40),
            "DEBUG": "false",
            "DATABASE_CONN_MAX_AGE": "60",  # the production default (make test sets 0)
            # The per-token limiter stays on (its Redis round trip is part of every request) but
            # above anything reachable here: one platform token carries all intake clients.
            "SAFEGUARD_API_RATE": "100000/min",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "SAFEGUARD_VAR_DIR": str(var),
            "EVIDENCE_ROOT": str(var / "evidence"),
            "SAFEGUARD_INDEX_DIR": str(var / "hash-index"),
            "STATIC_ROOT": str(var / "staticfiles"),
            "SAFEGUARD_SIGNING_KEY_FILE": str(var / "keys" / "packet-signing-key.pem"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        for name in (
            "SAFEGUARD_DECISION_WEBHOOK_URL",
            "SAFEGUARD_PAGING_WEBHOOK_URL",
            "CELERY_BROKER_URL",
            "DJANGO_SETTINGS_MODULE",
        ):
            self.env.pop(name, None)

    def manage(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise SetupError(f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def seed(self, n: int, run_id: str, hash_csv: Path | None) -> list[str]:
        """N moderator users with console tokens (create_api_token NAME --user USER), and the
        synthetic SHA-256 list (import_hashes), in one Django process to keep setup short."""
        script = (
            "import io, json\n"
            "from django.contrib.auth import get_user_model\n"
            "from django.contrib.auth.models import Group\n"
            "from django.core.management import call_command\n"
            "from core.roles import MODERATOR\n"
            "group = Group.objects.get(name=MODERATOR)\n"
            "keys = []\n"
            f"for i in range({n}):\n"
            f"    name = f'load-mod-{{i}}'\n"
            "    user = get_user_model().objects.create_user(username=name, password=None)\n"
            "    user.groups.add(group)\n"
            "    out = io.StringIO()\n"
            f"    call_command('create_api_token', f'{run_id}-{{name}}', username=name, stdout=out)\n"
            "    keys.append(out.getvalue().strip())\n"
            "print('KEYS=' + json.dumps(keys))\n"
        )
        if hash_csv is not None:
            script += (
                f"call_command('import_hashes', {str(hash_csv)!r}, name='Synthetic SHA-256 list"
                " (load test)', algorithm='sha256', provider='internal', stdout=io.StringIO())\n"
            )
        out = self.manage("shell", "-c", script)
        for line in out.splitlines():
            if line.startswith("KEYS="):
                return json.loads(line[5:])
        raise SetupError(f"no moderator keys in:\n{out}")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(
            argv, cwd=self.root, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        self.procs.append((name, proc, log))

    def start(self) -> None:
        self._spawn(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"{HOST}:{self.port}",
                "--workers",
                str(self.web_workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(self.web_threads),
                "--keep-alive",
                "30",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "--error-logfile",
                "-",
                "--log-level",
                "warning",
            ],
        )
        self._spawn(
            "celery",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "hashing,default,packets",
                "-c",
                str(self.worker_concurrency),
                "-P",
                "prefork",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"load-{uuid.uuid4().hex[:8]}@%h",
                "-l",
                "warning",
            ],
        )

    def check_alive(self) -> None:
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                raise SetupError(f"{name} exited with {proc.returncode}:\n{tail(log)}")

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                last = f"{resp.status} {resp.read()[:200]!r}"
                conn.close()
                if resp.status == 200:
                    return
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise SetupError(f"/healthz not 200 after {timeout}s (last: {last})")

    def wait_worker_ready(self, timeout: float = 90) -> None:
        # With -l warning the worker prints no "ready." line; ask it over the broker instead.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "inspect",
                    "ping",
                    "--timeout",
                    "3",
                ],
                cwd=self.root,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if proc.returncode == 0 and "pong" in proc.stdout:
                return
            time.sleep(0.5)
        raise SetupError(f"the Celery worker did not answer ping within {timeout}s")

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def log_problems(self) -> list[str]:
        """Tracebacks in the server and worker logs, summarised by their exception line."""
        problems = []
        for name, _, log in self.procs:
            text = log.read_text(errors="replace") if log.exists() else ""
            tracebacks = text.count("Traceback (most recent call last)")
            if not tracebacks:
                continue
            problems.append(f"{name} log: {tracebacks} tracebacks")
            seen: dict[str, int] = {}
            for line in text.splitlines():
                head = line.split(":", 1)[0]
                if (
                    line[:1].isalpha()
                    and ": " in line
                    and " " not in head
                    and head.endswith(("Error", "Exception", "Detected", "Exit"))
                ):
                    seen[line[:160]] = seen.get(line[:160], 0) + 1
            for line, count in sorted(seen.items(), key=lambda kv: -kv[1])[:5]:
                problems.append(f"  {count} x {line}")
        return problems


# --- CPU accounting (Linux /proc) -------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds used so far) for every readable process."""
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


def _tree(table: dict[int, tuple[int, float]], root: int) -> set[int]:
    pids, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in pids:
                pids.add(pid)
                frontier.append(pid)
    return pids


def _system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU seconds used by gunicorn, the worker and the stack's PostgreSQL backends."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def snapshot(self) -> dict[str, Any]:
        table = _proc_table()
        groups: dict[str, float] = {}
        for name, proc, _ in self.stack.procs:
            groups[name] = sum(table.get(pid, (0, 0.0))[1] for pid in _tree(table, proc.pid))
        backends: dict[int, float] = {}
        with (
            contextlib.suppress(psycopg2.Error),
            contextlib.closing(pg_connect("postgres")) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [DB_NAME])
            backends = {pid: table[pid][1] for (pid,) in cur.fetchall() if pid in table}
        return {
            "groups": groups,
            "backends": backends,
            "system": _system_cpu(),
            "load": os.getloadavg()[0],
            "self": time.process_time(),
        }

    @staticmethod
    def delta(a: dict[str, Any], b: dict[str, Any], wall: float) -> dict[str, float]:
        out = {
            f"{k} (cores)": (b["groups"][k] - a["groups"].get(k, 0.0)) / wall for k in b["groups"]
        }
        pg = sum(v - a["backends"].get(pid, 0.0) for pid, v in b["backends"].items())
        out["postgres backends of the stack (cores)"] = pg / wall
        out["load generator (cores)"] = (b["self"] - a["self"]) / wall
        busy = b["system"][0] - a["system"][0]
        total = b["system"][1] - a["system"][1]
        out["whole machine busy (%)"] = 100.0 * busy / total if total else float("nan")
        out["load average (1 min, at end)"] = b["load"]
        return out


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- Sampling and checks ------------------------------------------------------------------


class Sampler(threading.Thread):
    """Counts items and hashed media in the database once a second (its own connection)."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int, int, int, int]] = []  # t, items, media, done, dec
        self.halt = threading.Event()
        # What the stack's database sessions were doing, summed over samples (4 per second):
        # "active: Lock/advisory" = waiting for the audit-chain lock, "idle in transaction" =
        # holding a transaction open while Python runs, "active: CPU" = executing.
        self.activity: dict[str, int] = {}
        self.activity_samples = 0
        self.counting_activity = True  # the main thread turns this off when the load ends

    def _activity(self, cur: Any) -> None:
        cur.execute(
            "SELECT state, wait_event_type, wait_event, count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND state <> 'idle'"
            " GROUP BY 1, 2, 3",
            [DB_NAME],
        )
        for state, wtype, wevent, n in cur.fetchall():
            if state == "active":
                key = f"active: {wtype}/{wevent}" if wtype else "active: CPU"
            else:
                key = str(state)
            self.activity[key] = self.activity.get(key, 0) + n
        self.activity_samples += 1

    def run(self) -> None:
        conn = pg_connect(DB_NAME)
        try:
            next_count = 0.0
            while not self.halt.is_set():
                with conn.cursor() as cur:
                    if self.counting_activity:
                        self._activity(cur)
                    if time.monotonic() >= next_count:
                        next_count = time.monotonic() + self.interval
                        cur.execute(
                            "SELECT (SELECT count(*) FROM moderation_item),"
                            " (SELECT count(*) FROM moderation_media),"
                            " (SELECT count(*) FROM moderation_media"
                            "  WHERE hash_status = 'done'),"
                            " (SELECT count(*) FROM moderation_decision)"
                        )
                        row = cur.fetchone()
                        self.samples.append((time.monotonic(), *row))
                self.halt.wait(self.interval / 4)
        finally:
            conn.close()


def media_pending(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM moderation_media WHERE hash_status IN ('pending', 'processing')"
        )
        return cur.fetchone()[0]


def consistency(conn: Any, stats: Stats, stack: Stack) -> list[str]:
    failures: list[str] = []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT case_id, count(*) FROM moderation_decision GROUP BY case_id HAVING count(*) > 1"
        )
        twice = cur.fetchall()
        if twice:
            failures.append(f"cases decided more than once: {twice[:10]}")
        twice_client = {c: n for c, n in stats.decisions.items() if n > 1}
        if twice_client:
            failures.append(f"clients got 201 twice for cases: {list(twice_client)[:10]}")
        cur.execute("SELECT count(*) FROM moderation_decision")
        n_decisions = cur.fetchone()[0]
        if n_decisions != sum(stats.decisions.values()):
            failures.append(
                f"{n_decisions} decisions in the database, {sum(stats.decisions.values())} "
                "answered 201 to the clients"
            )
        cur.execute(
            "SELECT count(*) FROM moderation_decision d JOIN moderation_case c ON c.id = d.case_id"
            " WHERE c.status <> 'decided'"
        )
        undecided = cur.fetchone()[0]
        if undecided:
            failures.append(f"{undecided} decided cases are not in status 'decided'")
        ids = list(stats.accepted)
        cur.execute(
            "SELECT id, external_id, case_id FROM moderation_item WHERE id = ANY(%s)", [ids]
        )
        rows = {r[0]: r for r in cur.fetchall()}
        lost = [i for i in ids if i not in rows]
        if lost:
            failures.append(f"{len(lost)} accepted items missing: {lost[:10]}")
        wrong = [i for i, r in rows.items() if r[1] != stats.accepted[i]]
        if wrong:
            failures.append(f"{len(wrong)} items with another external id: {wrong[:10]}")
        no_case = [i for i, r in rows.items() if r[2] is None]
        if no_case:
            failures.append(f"{len(no_case)} items without a case: {no_case[:10]}")
        cur.execute("SELECT count(*) FROM moderation_item WHERE source = %s", [SOURCE])
        n_items = cur.fetchone()[0]
        if n_items != len(ids):
            failures.append(f"{n_items} items in the database, {len(ids)} accepted (201)")
        cur.execute(
            "SELECT hash_status, count(*) FROM moderation_media GROUP BY hash_status ORDER BY 1"
        )
        by_status = dict(cur.fetchall())
        stuck = {k: v for k, v in by_status.items() if k != "done"}
        if stuck:
            cur.execute(
                "SELECT hash_error, count(*) FROM moderation_media WHERE hash_status <> 'done'"
                " GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
            )
            failures.append(f"media not hashed after the drain: {stuck}; errors {cur.fetchall()}")
        if by_status.get("done", 0) + sum(stuck.values()) != len(stats.media_ids):
            failures.append(
                f"{sum(by_status.values())} media rows, {len(stats.media_ids)} accepted with media"
            )
        cur.execute(
            "SELECT prev_hash, count(*) FROM core_auditevent WHERE prev_hash IS NOT NULL "
            "GROUP BY 1 HAVING count(*) > 1"
        )
        forks = cur.fetchall()
        if forks:
            failures.append(f"audit chain forks (same prev_hash twice): {len(forks)}")
    try:
        stack.manage("verify_audit", timeout=120)
    except SetupError as exc:
        failures.append(f"verify_audit failed: {exc}")
    failures.extend(stack.log_problems())
    return failures


def db_summary(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT status || CASE WHEN restricted THEN '/restricted' ELSE '' END, count(*)"
            " FROM moderation_case GROUP BY 1 ORDER BY 1"
        )
        cases = ", ".join(f"{k} {v}" for k, v in cur.fetchall())
        cur.execute("SELECT count(*), count(DISTINCT media_id) FROM moderation_match")
        matches, matched_media = cur.fetchone()
        cur.execute("SELECT count(*) FROM core_auditevent")
        events = cur.fetchone()[0]
    return (
        f"cases: {cases}; {matches} known-hash matches on {matched_media} media; "
        f"{events} audit events"
    )


def hashed_latencies(conn: Any) -> tuple[list[float], float | None, float | None]:
    """Per-media seconds from intake to hashed, and first intake / last hash as epoch."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXTRACT(EPOCH FROM (m.hashed_at - i.created_at)) FROM moderation_media m"
            " JOIN moderation_item i ON i.id = m.item_id WHERE m.hash_status = 'done'"
        )
        lat = [float(r[0]) for r in cur.fetchall()]
        cur.execute(
            "SELECT EXTRACT(EPOCH FROM min(i.created_at)), EXTRACT(EPOCH FROM max(m.hashed_at))"
            " FROM moderation_item i LEFT JOIN moderation_media m ON m.item_id = i.id"
        )
        first, last = cur.fetchone()
    return lat, (float(first) if first else None), (float(last) if last else None)


# --- Main -----------------------------------------------------------------------------------


def xact_commits() -> int:
    """Transactions committed in the load database so far (pg_stat_database)."""
    with contextlib.closing(pg_connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [DB_NAME])
        row = cur.fetchone()
    return int(row[0]) if row else 0


def code_tree(ref: str, tmp: Path) -> Path:
    """The repository at `ref` (e.g. the commit before a change: the same-run baseline),
    unpacked from `git archive` (read-only on the repository) under `tmp`."""
    target = tmp / f"code-{ref[:12]}"
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SetupError(f"git archive {ref} failed: {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def run(args: argparse.Namespace) -> int:
    return run_measured(args)[0]


def run_measured(args: argparse.Namespace) -> tuple[int, dict[str, float]]:
    redis_url = f"{REDIS_BASE}/{args.redis_db}"
    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="safeguard-load-", dir=os.environ.get("LOAD_TMP")))
    stack: Stack | None = None
    stop = threading.Event()
    try:
        r = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        r.flushdb()
        t0 = time.monotonic()
        create_database()
        root = code_tree(args.code_ref, tmp) if args.code_ref else ROOT
        stack = Stack(
            tmp, redis_url, args.web_workers, args.web_threads, args.worker_concurrency, root
        )
        stack.manage("migrate", "--noinput")
        platform_key = stack.manage("create_api_token", f"{run_id}-platform").strip()
        images = [
            synthetic_jpeg(seed, args.image_width, args.image_height, quality=85)
            for seed in range(args.images)
        ]
        hash_csv = None
        if args.match_every:
            # A synthetic known-hash list: SHA-256 of every n-th generated image plus random
            # values, so some hashed media match and raise their case while it is worked.
            rng = random.Random(20261128)
            rows = [
                f"{hashlib.sha256(img).hexdigest()},A,"
                for seed, img in enumerate(images)
                if seed % args.match_every == 0
            ]
            rows += [f"{rng.getrandbits(256):064x},C," for _ in range(200)]
            hash_csv = tmp / "synthetic-sha256.csv"
            hash_csv.write_text("hash,category,metadata\n" + "\n".join(rows) + "\n")
        mod_keys = stack.seed(args.moderators, run_id, hash_csv)
        print(f"setup: database + migrate + tokens in {time.monotonic() - t0:.1f}s", flush=True)
        avg_kb = sum(map(len, images)) / len(images) / 1024
        stack.start()
        stack.wait_healthy()
        stack.wait_worker_ready()
        print(
            f"stack up at http://{HOST}:{stack.port} ({args.web_workers} gunicorn workers x "
            f"{args.web_threads} threads, 1 Celery worker -c {args.worker_concurrency}) "
            f"after {time.monotonic() - t0:.1f}s; images {args.image_width}x{args.image_height} "
            f"JPEG ~{avg_kb:.1f} KB",
            flush=True,
        )

        sampler = Sampler()
        sampler.start()
        meter = CpuMeter(stack)
        commits_before = xact_commits()
        cpu_before = meter.snapshot()
        per_client: list[Stats] = []
        threads: list[threading.Thread] = []
        start = time.monotonic()
        deadline = start + args.seconds
        max_requests = int(args.seconds * 500)  # a bound well above anything reachable
        for i in range(args.intake):
            s = Stats()
            per_client.append(s)
            # --rate: each client sends its share on a fixed schedule, the clients staggered
            per_request = (args.batch or 1) / (args.rate / args.intake) if args.rate else 0.0
            threads.append(
                threading.Thread(
                    target=intake_client,
                    args=(
                        i,
                        stack.port,
                        platform_key,
                        images,
                        run_id,
                        deadline,
                        stop,
                        max_requests,
                        s,
                        args.shared,
                        # --short: every other client sends batches, so both paths are covered.
                        args.batch if not args.short or i % 2 == 1 else 0,
                        per_request,
                        start + i * per_request / max(args.intake, 1),
                    ),
                    daemon=True,
                )
            )
        for i, key in enumerate(mod_keys):
            s = Stats()
            per_client.append(s)
            threads.append(
                threading.Thread(
                    target=moderator_client,
                    args=(i, stack.port, key, deadline, stop, max_requests, s),
                    daemon=True,
                )
            )
        for t in threads:
            t.start()
        next_report = start + 5
        while any(t.is_alive() for t in threads):
            if time.monotonic() > deadline + 120:
                stop.set()
                print("clients still running 120 s after the deadline; stopping them")
                break
            stack.check_alive()
            time.sleep(0.25)
            if time.monotonic() >= next_report and sampler.samples:
                _, items, media, done, dec = sampler.samples[-1]
                print(
                    f"  t={time.monotonic() - start:5.1f}s items={items} media={media} "
                    f"hashed={done} decisions={dec}",
                    flush=True,
                )
                next_report += 5
        stop.set()
        for t in threads:
            t.join(timeout=30)
        load_end = time.monotonic()
        sampler.counting_activity = False
        cpu = CpuMeter.delta(cpu_before, meter.snapshot(), load_end - start)
        elapsed = load_end - start

        stats = Stats()
        for s in per_client:
            stats.merge(s)

        # Drain: wait (bounded) for the worker to finish hashing what was accepted.
        conn = pg_connect(DB_NAME)
        drain_deadline = time.monotonic() + args.drain
        while media_pending(conn) and time.monotonic() < drain_deadline:
            stack.check_alive()
            time.sleep(0.5)
        drain_time = time.monotonic() - load_end
        # CPU per item counts the drain too: the worker's share of an item is mostly spent
        # after its request returned.
        cpu_all = meter.snapshot()
        sampler.halt.set()
        sampler.join(timeout=5)
        time.sleep(1.2)  # PostgreSQL flushes backends' statistics at most once a second
        commits = xact_commits() - commits_before

        # Read a sample back through the API (platform token: its own submissions).
        sample_client = Client(stack.port, platform_key, stats)
        sample = random.Random(7).sample(stats.media_ids, min(20, len(stats.media_ids)))
        not_done = []
        for item_id in sample:
            status, data = sample_client.call(
                "GET /api/v1/items/{id}", "GET", f"/api/v1/items/{item_id}", ok=(200,)
            )
            if status == 200:
                media = json.loads(data).get("media") or {}
                if media.get("hash_status") != "done":
                    not_done.append((item_id, media.get("hash_status")))
        sample_client.close()

        failures = consistency(conn, stats, stack)
        if not_done:
            failures.append(f"API shows media not done for sampled items: {not_done[:5]}")
        lat_hash, first_epoch, last_epoch = hashed_latencies(conn)
        summary = db_summary(conn)
        conn.close()

        report(
            args,
            cpu,
            stats,
            sampler,
            start,
            elapsed,
            drain_time,
            lat_hash,
            first_epoch,
            last_epoch,
            failures,
            summary,
        )
        metrics = per_item(
            cpu_before, cpu_all, commits, stats, lat_hash, elapsed, first_epoch, last_epoch
        )
        print_per_item(metrics)
        return (0 if stats.error_count == 0 and not failures else 1), metrics
    except SetupError as exc:
        print(f"SETUP FAILED: {exc}", file=sys.stderr)
        if stack is not None:
            for name, _, log in stack.procs:
                print(f"--- {name} log (tail) ---\n{tail(log)}", file=sys.stderr)
        return 2, {}
    finally:
        stop.set()
        if stack is not None:
            stack.stop()
        with contextlib.suppress(psycopg2.Error):
            drop_database()
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(redis_url, socket_connect_timeout=2).flushdb()
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(
    args: argparse.Namespace,
    cpu: dict[str, float],
    stats: Stats,
    sampler: Sampler,
    start: float,
    elapsed: float,
    drain_time: float,
    lat_hash: list[float],
    first_epoch: float | None,
    last_epoch: float | None,
    failures: list[str],
    summary: str,
) -> None:
    accepted = len(stats.accepted)
    n_media = len(stats.media_ids)
    decisions = sum(stats.decisions.values())
    in_window = [s for s in sampler.samples if s[0] <= start + elapsed]
    hashed_in_window = (in_window[-1][3] - in_window[0][3]) if len(in_window) > 1 else 0
    window = (in_window[-1][0] - in_window[0][0]) if len(in_window) > 1 else elapsed
    e2e_span = (last_epoch - first_epoch) if first_epoch and last_epoch else float("nan")
    print()
    print(
        f"== load: {elapsed:.1f}s, {args.intake} intake clients, {args.moderators} moderators "
        f"({os.cpu_count()} CPUs) =="
    )
    print(
        f"items accepted        {accepted:6d}  {accepted / elapsed:7.1f}/s "
        f"({n_media} with a JPEG, {accepted - n_media} JSON)"
    )
    print(f"media hashed in load  {hashed_in_window:6d}  {hashed_in_window / window:7.1f}/s")
    print(f"drain after load      {drain_time:6.1f}s  (until no media pending/processing)")
    if lat_hash:
        print(
            f"end to end            {accepted:6d} items ({n_media} hashed) in {e2e_span:.1f}s "
            f"= {accepted / e2e_span:.1f} items/s; media {n_media / e2e_span:.1f}/s; "
            f"intake->hashed p50 {percentile(lat_hash, 50):.2f}s "
            f"p95 {percentile(lat_hash, 95):.2f}s max {max(lat_hash):.2f}s"
        )
    print(
        f"claims                {stats.claims:6d}  {stats.claims / elapsed:7.1f}/s "
        f"(+{stats.empty_claims} empty-queue 204)"
    )
    print(
        f"decisions             {decisions:6d}  {decisions / elapsed:7.1f}/s "
        f"({stats.releases} released after 409)"
    )
    print()
    print(
        f"{'endpoint':42s} {'n':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} "
        f"{'max ms':>8s}  statuses"
    )
    for endpoint in sorted(stats.latencies):
        values = stats.latencies[endpoint]
        statuses = ", ".join(f"{k}:{v}" for k, v in sorted(stats.statuses[endpoint].items()))
        print(
            f"{endpoint:42s} {len(values):6d} {percentile(values, 50) * 1000:8.1f} "
            f"{percentile(values, 95) * 1000:8.1f} {percentile(values, 99) * 1000:8.1f} "
            f"{max(values) * 1000:8.1f}  {statuses}"
        )
    if sampler.activity_samples:
        print()
        print(
            f"database sessions of the stack, mean over {sampler.activity_samples} samples "
            "(non-idle only):"
        )
        for key, n in sorted(sampler.activity.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {n / sampler.activity_samples:6.2f}  {key}")
    print(summary)
    print()
    print("CPU during the load (1.00 = one core):")
    for key, value in cpu.items():
        print(f"  {value:7.2f}  {key}")
    print()
    print(f"errors: {stats.error_count}")
    for message in stats.errors:
        print(f"  {message}")
    print("consistency: " + ("ok" if not failures else "FAILED"))
    for message in failures:
        print(f"  {message}")


def per_item(
    before: dict[str, Any],
    after: dict[str, Any],
    commits: int,
    stats: Stats,
    lat_hash: list[float],
    elapsed: float,
    first_epoch: float | None = None,
    last_epoch: float | None = None,
) -> dict[str, float]:
    """The per-item figures of a run: CPU milliseconds by process group over load + drain
    (from /proc), transactions (pg_stat_database), items/s and intake -> hashed latency.
    "items/s" is accepted items over the load; "e2e items/s" is accepted items from the first
    intake to the last hash (what the stack sustains when hashing lags behind intake)."""
    n = max(len(stats.accepted), 1)
    span = (last_epoch - first_epoch) if first_epoch and last_epoch else float("nan")

    def ms(group: str) -> float:
        return (after["groups"].get(group, 0.0) - before["groups"].get(group, 0.0)) * 1000 / n

    pg = sum(v - before["backends"].get(pid, 0.0) for pid, v in after["backends"].items())
    web, worker = ms("gunicorn"), ms("celery")
    return {
        "items": float(len(stats.accepted)),
        "items/s": len(stats.accepted) / elapsed,
        "e2e items/s": len(stats.accepted) / span if span and span > 0 else float("nan"),
        "claims/s": stats.claims / elapsed,
        "decisions/s": sum(stats.decisions.values()) / elapsed,
        "web cpu ms/item": web,
        "worker cpu ms/item": worker,
        "app cpu ms/item": web + worker,
        "postgres cpu ms/item": pg * 1000 / n,
        "transactions/item": commits / n,
        "hashed p50 s": percentile(lat_hash, 50),
        "hashed p95 s": percentile(lat_hash, 95),
        "hashed p99 s": percentile(lat_hash, 99),
        "errors": float(stats.error_count),
    }


def print_per_item(metrics: dict[str, float]) -> None:
    if not metrics:
        return
    print()
    print("per item (load + drain; CPU from /proc, transactions from pg_stat_database):")
    for key, value in metrics.items():
        print(f"  {value:9.2f}  {key}")


COMPARE_KEYS = (
    "items/s",
    "e2e items/s",
    "claims/s",
    "decisions/s",
    "web cpu ms/item",
    "worker cpu ms/item",
    "app cpu ms/item",
    "postgres cpu ms/item",
    "transactions/item",
    "hashed p50 s",
    "hashed p95 s",
    "hashed p99 s",
    "errors",
)


def compare(args: argparse.Namespace) -> int:
    """Several variants one after another in one invocation, each on a fresh stack, with
    ratios against the first: the same-run baseline the figures are quoted against."""
    variants: list[tuple[str, dict[str, Any]]] = []
    if args.baseline_ref:
        variants.append(
            (
                f"one by one, code at {args.baseline_ref}",
                {"code_ref": args.baseline_ref, "batch": 0},
            )
        )
    for ref in args.also_ref or []:
        variants.append((f"one by one, code at {ref}", {"code_ref": ref, "batch": 0}))
    variants.append(("one by one (this code)", {"code_ref": None, "batch": 0}))
    if args.compare_batch:
        variants.append(
            (
                f"batch of {args.compare_batch} (this code)",
                {"code_ref": None, "batch": args.compare_batch},
            )
        )
    if args.bracket and len(variants) > 1:
        # The first variant again at the end: on this VM a run's figures drift by more than
        # some changes (benchmarks/LOAD.md), and the first run of an invocation meets a
        # colder machine; the ratios are then against the mean of its two runs.
        name, overrides = variants[0]
        variants.append((f"{name} (again)", overrides))
    groups = [variants]
    mods = args.compare_moderators
    if mods:
        # The full mix (intake + claim + decision) with its own same-run baseline: the same
        # variants again, each with --compare-moderators moderator clients.
        groups.append(
            [(f"{name}, {mods} moderators", {**o, "moderators": mods}) for name, o in variants]
        )
    rc_all = 0
    for group in groups:
        results: list[tuple[str, int, dict[str, float]]] = []
        for name, overrides in group:
            print(f"\n######## {name} ########", flush=True)
            rc, metrics = run_measured(argparse.Namespace(**{**vars(args), **overrides}))
            results.append((name, rc, metrics))
        print_comparison(results, bracket=args.bracket)
        rc_all = max(rc_all, *(rc for _, rc, _ in results))
    return rc_all


def print_comparison(
    results: list[tuple[str, int, dict[str, float]]], *, bracket: bool = False
) -> None:
    base = results[0][2]
    if bracket and len(results) > 2:
        last = results[-1][2]
        base = {k: (v + last[k]) / 2 for k, v in base.items() if k in last}
        print("\n== comparison (ratio = variant / mean of the first and last runs, same run) ==")
    else:
        print("\n== comparison (ratio = variant / first variant, same run) ==")
    print(f"{'':26s}" + "".join(f"{name[:28]:>30s}" for name, _, _ in results))
    for key in COMPARE_KEYS:
        cells = []
        for _, _, m in results:
            value = m.get(key, float("nan"))
            ref = base.get(key) or float("nan")
            cells.append(f"{value:10.2f} ({value / ref:5.2f}x)".rjust(30))
        print(f"{key:26s}" + "".join(cells))
    print("exit codes: " + ", ".join(f"{name}: {rc}" for name, rc, _ in results), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--short",
        action="store_true",
        help="~8 s of load, 2 intake clients, 4 moderators (overrides those three)",
    )
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--intake", type=int, default=4)
    ap.add_argument("--moderators", type=int, default=16)
    ap.add_argument(
        "--drain", type=float, default=90.0, help="max seconds to wait for hashing after the load"
    )
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--web-threads", type=int, default=4)
    ap.add_argument("--worker-concurrency", type=int, default=2)
    ap.add_argument("--redis-db", type=int, default=12)
    ap.add_argument("--images", type=int, default=64, help="distinct synthetic JPEGs")
    ap.add_argument(
        "--match-every",
        type=int,
        default=4,
        help="put the SHA-256 of every n-th image in a synthetic known-hash list (0: no list)",
    )
    ap.add_argument(
        "--shared",
        type=float,
        default=0.1,
        help="fraction of JSON items naming one of 20 shared subject accounts (join its case)",
    )
    ap.add_argument("--image-width", type=int, default=320)
    ap.add_argument("--image-height", type=int, default=240)
    ap.add_argument("--lock-wait", type=float, default=30.0)
    ap.add_argument("--keep-tmp", action="store_true", help="keep logs and evidence afterwards")
    ap.add_argument(
        "--batch",
        type=int,
        default=0,
        help="items per POST /api/v1/items/batch (0: one by one through POST /api/v1/items)",
    )
    ap.add_argument(
        "--code-ref",
        default=None,
        help="run the stack from this git commit (git archive) instead of the working tree",
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help="run one-by-one and batch variants back to back and print ratios",
    )
    ap.add_argument(
        "--baseline-ref",
        default=None,
        help="with --compare: first run the one-by-one path at this commit (the baseline)",
    )
    ap.add_argument(
        "--also-ref",
        action="append",
        metavar="REF",
        help="with --compare: also run the one-by-one path at this commit, after the baseline "
        "(repeatable; e.g. the previous session's code, to isolate one change)",
    )
    ap.add_argument(
        "--bracket",
        action="store_true",
        help="with --compare: run the first variant again at the end and quote ratios against "
        "the mean of its two runs (drift and warm-up cancel out)",
    )
    ap.add_argument("--compare-batch", type=int, default=100, help="0: leave out the batch variant")
    ap.add_argument(
        "--compare-moderators",
        type=int,
        default=0,
        help="with --compare: then run the same variants again with this many moderator "
        "clients (the full mix: intake + claim + decision), with their own ratios",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offer this many items/s in all (each intake client on a fixed schedule) instead "
        "of sending as fast as the stack answers",
    )
    args = ap.parse_args()
    if args.short:
        args.seconds, args.intake, args.moderators = 8.0, 2, 4
        args.drain = min(args.drain, 40.0)
        args.batch = args.batch or 20
    if args.rate < 0 or (args.rate and not args.intake):
        ap.error("--rate needs intake clients and a positive rate")
    if not 0 <= args.batch <= 500 or not 1 <= args.compare_batch <= 500:
        ap.error("--batch in [0, 500], --compare-batch in [1, 500]")
    if not (0 < args.seconds <= 3600 and 0 <= args.intake <= 64 and 0 <= args.moderators <= 256):
        ap.error("--seconds in (0, 3600], --intake <= 64, --moderators <= 256")

    # SIGTERM (e.g. from a test runner's timeout) cleans up like Ctrl-C does.
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        with run_lock(args.lock_wait):
            return compare(args) if args.compare else run(args)
    except SetupError as exc:
        print(f"SETUP FAILED: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; subprocesses stopped, database dropped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
