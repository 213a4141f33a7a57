"""core.keyfiles: a key file generated on first use is the one key every process gets."""

from __future__ import annotations

import multiprocessing
import os
import random
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core import evidence_crypto as ec
from core import keyfiles, signing

PROCESSES, THREADS = 4, 8


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def test_threads_and_processes_racing_to_create_the_key_file_all_get_its_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gunicorn's threads and processes and the workers all meet a missing key file on their
    first request: each must end up with the bytes the file holds. A temporary name shared by
    a process's threads once left processes with different evidence master keys, so evidence
    encrypted by one could not be decrypted by the others (benchmarks/LOAD.md, session 11)."""
    key_file = tmp_path / "keys" / "evidence.key"
    link = os.link

    def slow_link(src: Any, dst: Any) -> None:
        time.sleep(0.02)  # widen the window between writing a key and publishing it
        link(src, dst)

    monkeypatch.setattr(os, "link", slow_link)

    def slow_key() -> bytes:
        # Writers finish at different times, so one may still be writing while another links.
        time.sleep(random.uniform(0, 0.02))
        return secrets.token_bytes(32)

    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(PROCESSES * THREADS)
    found: Any = ctx.Queue()

    def race() -> None:
        start.wait(timeout=30)
        try:
            found.put(keyfiles.read_or_create(key_file, slow_key))
        except OSError as exc:  # reported, not raised: the parent checks
            found.put(repr(exc))

    def process() -> None:
        # The per-process lock would serialise these threads: bypass it here, so threads of
        # one process race on the file protocol itself, as processes do.
        keyfiles._lock = _NoLock()  # type: ignore[assignment]  # this child only (fork)
        threads = [threading.Thread(target=race) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

    children = [ctx.Process(target=process) for _ in range(PROCESSES)]
    for child in children:
        child.start()
    results = [found.get(timeout=60) for _ in range(PROCESSES * THREADS)]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert results == [key_file.read_bytes()] * (PROCESSES * THREADS)
    assert [p.name for p in key_file.parent.iterdir()] == ["evidence.key"]  # no leftovers
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_an_existing_file_is_read_and_never_regenerated(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_bytes(b"kept")
    assert keyfiles.read_or_create(key_file, lambda: pytest.fail("regenerated")) == b"kept"


def test_the_signing_and_evidence_keys_are_generated_through_it(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    real = keyfiles.read_or_create

    def spy(key_file: Path, generate: Any) -> bytes:
        created.append(key_file.name)
        return real(key_file, generate)

    monkeypatch.setattr(keyfiles, "read_or_create", spy)
    signing._load_private.cache_clear()
    ec._keys_from_file.cache_clear()
    settings.SAFEGUARD_SIGNING_KEY_FILE = tmp_path / "keys" / "signing.pem"
    settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = ""
    settings.SAFEGUARD_EVIDENCE_KEY_FILE = tmp_path / "keys" / "evidence.key"
    assert signing.fingerprint() == signing.fingerprint()
    (key,) = ec.master_keys()
    assert key.id == "local-1"
    assert sorted(set(created)) == ["evidence.key", "signing.pem"]
    for name in ("signing.pem", "evidence.key"):
        assert oct((tmp_path / "keys" / name).stat().st_mode & 0o777) == "0o600"
