"""The short load test: the real stack (gunicorn + Celery + PostgreSQL + Redis) under ~8 s of
concurrent intake and moderation, with no errors and a consistent database afterwards. Intake
takes both paths: one client one item per request, the other batches of 20 through
`POST /api/v1/items/batch` (multipart, one file part per image).

`benchmarks/load.py --short` manages everything itself (its own database, Redis db, tokens,
gunicorn and worker subprocesses), so this test uses no Django database fixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "load.py"
TIMEOUT = 240  # ~70 s normally; setup alone took 70 s at load average 50 (2 shared cores)
PG_URL = os.environ.get("LOAD_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379")


def _require_services() -> None:
    try:
        psycopg2.connect(f"{PG_URL}/postgres", connect_timeout=2).close()
    except psycopg2.Error as exc:
        service_unavailable(f"needs PostgreSQL at {PG_URL}: {exc}")
    try:
        redis.Redis.from_url(f"{REDIS_URL}/12", socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        service_unavailable(f"needs Redis at {REDIS_URL}: {exc}")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_short_load_has_no_errors_and_stays_consistent() -> None:
    _require_services()
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--short"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: gunicorn and the worker included
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the script stop its subprocesses and drop its database; then make sure.
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        pytest.fail(f"load.py --short did not finish within {TIMEOUT}s:\n{output}")
    assert proc.returncode == 0, f"load.py --short exited {proc.returncode}:\n{output}"
    assert "POST /api/v1/items/batch (20 items)" in output, output  # the batch path ran
