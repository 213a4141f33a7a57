"""Key files generated on first use (the packet signing key, the demo evidence master key),
safe when many processes and threads meet the missing file at once.

Imports nothing from the project.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

_lock = threading.Lock()


def _new_lock_in_child() -> None:
    # A fork while another thread held the lock would leave the child's copy held forever.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_or_create(key_file: Path, generate: Callable[[], bytes]) -> bytes:
    """The file's bytes; if it does not exist yet, `generate()`'s, stored owner-only first.

    Gunicorn's threads and processes and the Celery workers all reach a missing key file on
    their first request or task. Each writes a complete, synced file under a name of its own,
    then links it into place, which fails if another got there first; everyone then reads the
    file, so all of them use the one key it holds. A temporary name shared by the threads of a
    process let one truncate and rewrite it while another linked it: processes then held
    different keys, and evidence one had encrypted did not decrypt in the others
    (benchmarks/LOAD.md, session 11). One thread per process at a time, besides; the
    callers cache the result, so this runs about once per process.
    """
    with _lock:
        if not key_file.exists():
            if not key_file.parent.is_dir():
                key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _fsync_dir(key_file.parent.parent)
            tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(generate())
                    fh.flush()
                    os.fsync(fh.fileno())
                with contextlib.suppress(FileExistsError):  # another process won: use its key
                    os.link(tmp, key_file)
            finally:
                tmp.unlink(missing_ok=True)
        # Every caller, not only the one whose link won: nobody encrypts or signs with a key
        # whose directory entry a crash could still take away. Once per process (the callers
        # cache what this returns).
        try:
            _fsync_dir(key_file.parent)
        except OSError as exc:
            # A key file an operator mounted read-only, or in a directory this user may not
            # list: nothing of ours to make durable there.
            if exc.errno not in (errno.EROFS, errno.EINVAL, errno.EACCES, errno.EPERM):
                raise
        return key_file.read_bytes()
