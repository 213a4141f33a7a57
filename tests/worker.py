"""Start a real Celery worker (a subprocess) against the test database and a real Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection

from tests.services import require_redis

ROOT = Path(__file__).resolve().parent.parent


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL if it has not exited within 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def children(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def kill_child(self) -> int:
        """SIGKILL the pool process running tasks (the main process survives and requeues)."""
        children = self.children()
        assert children, "the worker has no pool process"
        os.kill(children[0], signal.SIGKILL)
        return children[0]

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL the pool processes and the main process, at once. For teardown: a warm
        shutdown waits ~3 s for its pool, and nothing of a finished test's worker is kept (its
        unacknowledged messages are flushed before the next worker starts; a decoder child
        exits when its pipe closes)."""
        if self.proc.poll() is not None:
            return
        children = self.children()
        self.proc.kill()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def worker_env() -> dict[str, str]:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    database_url = (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": require_redis(),
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "EVIDENCE_ROOT": str(settings.EVIDENCE_ROOT),
            "SAFEGUARD_INDEX_DIR": str(settings.SAFEGUARD_INDEX_DIR),
            "SECRET_KEY": "worker-test-secret",
            "DEBUG": "false",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def _wait_ready(worker: WorkerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ready." in worker.output():
            return
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.output()}")
        time.sleep(0.1)
    raise AssertionError(f"worker not ready after {timeout}s:\n{worker.output()}")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """A factory: `start_worker()` launches a worker; all are stopped at teardown."""
    if connection.vendor != "postgresql":
        from tests.conftest import service_unavailable

        service_unavailable("a real worker needs the PostgreSQL test database")
    url = require_redis()
    redis.Redis.from_url(url).flushdb()  # no stale messages from earlier tests
    started: list[WorkerProcess] = []

    def start(
        concurrency: int = 1, queues: str = "hashing,default,packets", **extra_env: str
    ) -> WorkerProcess:
        """`queues`: what this worker consumes (a split deployment runs one per queue set)."""
        log = tmp_path / f"worker-{len(started)}.log"
        env = {**worker_env(), **extra_env}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "-P",
                "prefork",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(proc, log)
        started.append(worker)
        _wait_ready(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
    # Close our connection so the test database can be flushed and dropped.
    connection.close()


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 60,
    interval: float = 0.1,
    message: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def use_broker(url: str) -> None:
    """Point this process's Celery producer at another broker URL (drops pooled connections)."""
    from config.celery import app

    app.conf.broker_url = url
    # Celery has no public API to re-point a live app: drop the cached pools so the next
    # publish builds them for the new URL (kombu keeps one pool per URL, so switching back
    # reuses the original one).
    app._pool = None
    app.amqp._producer_pool = None
