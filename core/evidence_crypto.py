"""Evidence encrypted at rest: envelope encryption, one data key per file, streamed in chunks.

The file format (version 1)::

    header  = MAGIC (8) | version (1) | chunk size (4, big-endian) | key id (16, UUID) |
              nonce prefix (7, random)
    chunk i = AES-256-GCM(data key, nonce = prefix | i (4, big-endian) | last (1),
                          plaintext[i*C : (i+1)*C], aad = header) — ciphertext and 16-byte tag

This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): every chunk is
authenticated on its own, bound to the header and to its position, and the last chunk says it
is the last. Reordering, truncation at any byte (including a whole-chunk boundary), appending
and a swapped header are all detected. Chunks have a fixed size, so any byte range is read by
decrypting only its chunks (the media view's video seeking) and memory stays at one chunk.

The data key (32 random bytes) is never written to the evidence store. It lives in the
database (core.models.EvidenceKey) wrapped with AES-256-GCM by a master key from the
environment (SAFEGUARD_EVIDENCE_MASTER_KEYS), with the master key's id, so master keys rotate
by re-wrapping rows (rotate_evidence_keys) without rewriting evidence. Crypto-shredding
(evidence_keys_shred, the retention purge) empties the wrapped key: every copy of the file, in
any backup of the evidence store, is then ciphertext nobody can open.

Files written before encryption (no MAGIC) are still read as plaintext: the migration path is
`manage.py encrypt_evidence`.

Imports nothing from the project outside core.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import secrets
import struct
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core import keyfiles, sqlrows
from core.audit import Actor, audit_record
from core.models import EvidenceKey

MAGIC = b"\x89SGEV\r\n\x1a"  # like PNG's: no image or video format starts with it
VERSION = 1
_HEADER = struct.Struct("!8sBI16s7s")
HEADER_SIZE = _HEADER.size  # 36
TAG_SIZE = 16
DEFAULT_CHUNK = 64 * 1024
_MAX_CHUNK = 16 * 1024 * 1024
_KEY_BYTES = 32
_WRAP_AAD = b"safeguard evidence data key v1|"
_COPY = 1024 * 1024


class EvidenceCryptoError(ValueError):
    """An evidence file that cannot be read: the message says why, for logs and the audit."""


class EvidenceKeyError(EvidenceCryptoError):
    """The file's data key is unavailable: shredded, unknown, or wrapped by a master key that
    is not configured (or configured with the wrong bytes)."""


class EvidenceCorrupt(EvidenceCryptoError):
    """The bytes on disk are not what was written: a bad header, a truncated or extended
    file, or a chunk whose GCM tag does not verify (tampering or disk corruption)."""


# --- Master keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterKey:
    id: str
    key: bytes = b""

    def __repr__(self) -> str:  # never print key bytes
        return f"MasterKey({self.id!r})"


def master_key_line(key_id: str) -> str:
    """A new master key entry, "id:base64url(32 random bytes)"."""
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).decode()}"


def parse_master_keys(text: str) -> tuple[MasterKey, ...]:
    """Parse "id:base64key[,id:base64key…]" (newlines work too); the first is current.

    Raises ValueError naming the bad entry (never its key bytes).
    """
    keys: list[MasterKey] = []
    for number, entry in enumerate(text.replace("\n", ",").split(","), start=1):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id or len(key_id) > 64:
            raise ValueError(f"master key entry {number} is not 'id:base64key'")
        try:
            raw = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
        except (binascii.Error, ValueError):
            raise ValueError(f"master key {key_id!r} is not valid base64") from None
        if len(raw) != _KEY_BYTES:
            raise ValueError(f"master key {key_id!r} is {len(raw)} bytes, not {_KEY_BYTES}")
        if any(k.id == key_id for k in keys):
            raise ValueError(f"master key id {key_id!r} appears twice")
        keys.append(MasterKey(key_id, raw))
    return tuple(keys)


@lru_cache(maxsize=8)
def _keys_from_file(path: str) -> tuple[MasterKey, ...]:
    # First use with no configured key (the embedded demo, a deployment that has not set
    # SAFEGUARD_EVIDENCE_MASTER_KEYS): generate one, owner-only, once for every process.
    key_file = Path(path)
    text = keyfiles.read_or_create(
        key_file, lambda: (master_key_line("local-1") + "\n").encode()
    ).decode()
    keys = parse_master_keys(text)
    if not keys:
        raise EvidenceKeyError(f"{key_file} holds no evidence master key")
    return keys


@lru_cache(maxsize=8)
def _keys_from_setting(text: str) -> tuple[MasterKey, ...]:
    return parse_master_keys(text)


def master_keys() -> tuple[MasterKey, ...]:
    """The configured master keys, the current one first."""
    configured = (getattr(settings, "SAFEGUARD_EVIDENCE_MASTER_KEYS", "") or "").strip()
    if configured:
        keys = _keys_from_setting(configured)
        if keys:
            return keys
    return _keys_from_file(str(settings.SAFEGUARD_EVIDENCE_KEY_FILE))


def master_keys_configured() -> bool:
    """Whether master keys come from the environment (not the generated demo key file)."""
    return bool((getattr(settings, "SAFEGUARD_EVIDENCE_MASTER_KEYS", "") or "").strip())


def current_master_key() -> MasterKey:
    return master_keys()[0]


def _master(key_id: str) -> MasterKey:
    for key in master_keys():
        if key.id == key_id:
            return key
    raise EvidenceKeyError(
        f"the data key is wrapped by master key {key_id!r}, which is not configured "
        "(SAFEGUARD_EVIDENCE_MASTER_KEYS): keep retired keys listed until "
        "rotate_evidence_keys has re-wrapped every data key"
    )


# --- Data keys --------------------------------------------------------------------------------


def _wrap_aad(key_ref: uuid.UUID, master_id: str) -> bytes:
    return _WRAP_AAD + key_ref.bytes + master_id.encode()


def _wrap(master: MasterKey, key_ref: uuid.UUID, data_key: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(master.key).encrypt(nonce, data_key, _wrap_aad(key_ref, master.id))


def _unwrap(row: EvidenceKey) -> bytes:
    if row.shredded_at is not None or not row.wrapped:
        raise EvidenceKeyError(
            f"the data key {row.pk} was destroyed (crypto-shredded"
            + (f" at {row.shredded_at:%Y-%m-%d %H:%M} UTC" if row.shredded_at else "")
            + "): this file can no longer be read"
        )
    master = _master(row.master_key_id)
    wrapped = bytes(row.wrapped)
    try:
        return AESGCM(master.key).decrypt(
            wrapped[:12], wrapped[12:], _wrap_aad(row.pk, row.master_key_id)
        )
    except InvalidTag:
        raise EvidenceKeyError(
            f"master key {row.master_key_id!r} does not unwrap data key {row.pk}: the configured "
            "key bytes for that id are wrong, or the wrapped key was altered"
        ) from None


def data_key_create(*, name: str = "") -> tuple[uuid.UUID, bytes]:
    """A new random data key, stored wrapped by the current master key: (its id, the key)."""
    master = current_master_key()
    key_ref = uuid.uuid4()
    data_key = AESGCM.generate_key(bit_length=256)
    # One per stored file, inside intake's transaction: inserted without compiling the
    # statement each time (core.sqlrows).
    sqlrows.insert(
        EvidenceKey,
        [
            EvidenceKey(
                id=key_ref,
                name=name[:200],
                master_key_id=master.id,
                wrapped=_wrap(master, key_ref, data_key),
            )
        ],
    )
    return key_ref, data_key


def data_key_load(key_ref: uuid.UUID) -> bytes:
    # One indexed read for every file the worker hashes or the media view serves: plain SQL,
    # as the ORM's query compilation (and the model's default ordering) cost more CPU than the
    # read itself (~1 ms of ~7 ms per hashed image, profiled; benchmarks/LOAD.md).
    pk = EvidenceKey._meta.pk
    assert pk is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT master_key_id, wrapped, shredded_at IS NOT NULL "  # noqa: S608 — fixed names
            f"FROM {EvidenceKey._meta.db_table} WHERE {pk.column} = %s",
            [pk.get_db_prep_value(key_ref, connection)],
        )
        found = cursor.fetchone()
    if found is None:
        raise EvidenceKeyError(
            f"the data key {key_ref} is not in the database: the file cannot be read"
        )
    master_key_id, wrapped, shredded = found
    if shredded or not wrapped:
        return _unwrap(EvidenceKey.objects.get(pk=key_ref))  # raises, naming when it went
    return _unwrap(EvidenceKey(id=key_ref, master_key_id=master_key_id, wrapped=bytes(wrapped)))


def data_key_rewrap(row: EvidenceKey, master: MasterKey | None = None) -> bool:
    """Re-wrap one data key under the current master key; False if already current, or shredded.

    A conditional UPDATE: a row shredded meanwhile stays shredded.
    """
    master = master or current_master_key()
    if row.shredded_at is not None or not row.wrapped or row.master_key_id == master.id:
        return False
    data_key = _unwrap(row)
    return bool(
        EvidenceKey.objects.filter(
            pk=row.pk, master_key_id=row.master_key_id, shredded_at__isnull=True
        ).update(
            master_key_id=master.id,
            wrapped=_wrap(master, row.pk, data_key),
            rewrapped_at=timezone.now(),
        )
    )


@dataclass(frozen=True)
class Rotation:
    rewrapped: int
    remaining: int
    current: str


def evidence_keys_rotate(
    *, actor: Actor, batch_size: int = 500, limit: int | None = None
) -> Rotation:
    """Re-wrap every live data key under the current master key, a batch per transaction (each
    audited). Resumable: an interrupted run leaves rows either re-wrapped or not, and the next
    run picks up those still under an older key. The evidence files are not rewritten."""
    master = current_master_key()
    done = 0
    while limit is None or done < limit:
        take = batch_size if limit is None else min(batch_size, limit - done)
        with transaction.atomic():
            rows = list(
                EvidenceKey.objects.select_for_update(skip_locked=True)
                .filter(shredded_at__isnull=True)
                .exclude(master_key_id=master.id)
                .order_by("pk")[:take]
            )
            if not rows:
                break
            previous = sorted({row.master_key_id for row in rows})
            count = sum(data_key_rewrap(row, master) for row in rows)
            audit_record(
                actor=actor,
                verb="evidence_keys.rewrapped",
                object_type="core.evidencekey",
                data={"count": count, "from": previous, "to": master.id},
            )
        done += count
        if count == 0:
            break
    remaining = (
        EvidenceKey.objects.filter(shredded_at__isnull=True)
        .exclude(master_key_id=master.id)
        .count()
    )
    return Rotation(rewrapped=done, remaining=remaining, current=master.id)


def evidence_keys_shred(*, names: Iterable[str] = (), paths: Iterable[Path] = ()) -> list[str]:
    """Crypto-shred: destroy the data keys of these evidence files (by storage name, and by the
    key id in each readable file's header). Returns the ids shredded. Call it inside the
    transaction that records why (the purge); the rows stay, marked, for the record."""
    refs: set[uuid.UUID] = set()
    for path in paths:
        ref = file_key_ref(path)
        if ref is not None:
            refs.add(ref)
    names = [n for n in names if n]
    query = Q(pk__in=refs) | Q(name__in=names)
    live = EvidenceKey.objects.filter(query, shredded_at__isnull=True)
    shredded = [str(pk) for pk in live.values_list("pk", flat=True)]
    live.update(wrapped=b"", shredded_at=timezone.now())
    return sorted(shredded)


# --- Files ------------------------------------------------------------------------------------


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 2**32:
        raise EvidenceCryptoError("the file has too many chunks for one data key")
    return prefix + struct.pack("!IB", index, 1 if last else 0)


@dataclass(frozen=True)
class Encrypted:
    """What encrypting a stream produced: the data key's id and the plaintext's size. (No
    digest: intake took the custody SHA-256 while the upload streamed in.)"""

    key_ref: uuid.UUID
    size: int


def encrypt_stream(
    source: BinaryIO, target: BinaryIO, *, name: str = "", chunk_size: int = DEFAULT_CHUNK
) -> Encrypted:
    """Encrypt `source` into `target` chunk by chunk (memory: two chunks), with a new data key."""
    if not 16 <= chunk_size <= _MAX_CHUNK:
        raise ValueError("chunk size out of range")
    key_ref, data_key = data_key_create(name=name)
    aead = AESGCM(data_key)
    prefix = secrets.token_bytes(7)
    header = _HEADER.pack(MAGIC, VERSION, chunk_size, key_ref.bytes, prefix)
    target.write(header)
    size = 0
    index = 0
    chunk = _read_full(source, chunk_size)
    while True:
        following = _read_full(source, chunk_size) if len(chunk) == chunk_size else b""
        last = not following
        size += len(chunk)
        target.write(aead.encrypt(_nonce(prefix, index, last), chunk, header))
        if last:
            break
        chunk, index = following, index + 1
    return Encrypted(key_ref=key_ref, size=size)


def _read_full(source: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    wanted = n
    while wanted > 0:
        part = source.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def encrypt_to_temp(
    source: Path, directory: Path, *, name: str = "", chunk_size: int = DEFAULT_CHUNK
) -> tuple[Path, Encrypted]:
    """Encrypt the file at `source` into a new owner-only file in `directory`, synced to disk;
    the caller renames it into place (or removes it)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".enc-")
    tmp = Path(tmp_name)
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
            result = encrypt_stream(src, out, name=name, chunk_size=chunk_size)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, result


def encrypt_file(
    source: Path, target: Path, *, name: str = "", chunk_size: int = DEFAULT_CHUNK
) -> Encrypted:
    """Encrypt the file at `source` into `target` (owner-only), atomically: the ciphertext is
    written beside the target, synced, then renamed over it."""
    tmp, result = encrypt_to_temp(source, target.parent, name=name, chunk_size=chunk_size)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result


def encrypt_bytes(data: bytes, *, name: str = "", chunk_size: int = DEFAULT_CHUNK) -> bytes:
    """Encrypt a small file held in memory (a contact-sheet thumbnail)."""
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, name=name, chunk_size=chunk_size)
    return out.getvalue()


def is_encrypted(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def file_key_ref(path: str | os.PathLike[str]) -> uuid.UUID | None:
    """The data key id in an encrypted file's header; None for plaintext, missing or unreadable
    files."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_SIZE)
    except OSError:
        return None
    if len(head) < HEADER_SIZE or not head.startswith(MAGIC):
        return None
    return uuid.UUID(bytes=_HEADER.unpack(head)[3])


class EvidenceReader(io.RawIOBase):
    """A read-only, seekable view of an evidence file's plaintext: decrypts the chunks it is
    asked for (one cached), or passes a legacy plaintext file through.

    It deliberately has no usable fileno(): a server's sendfile() must never send the
    ciphertext (or bypass decryption); gunicorn falls back to reading it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 — closed by close()
        try:
            self._setup()
        except BaseException:
            self._fh.close()
            raise
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def _setup(self) -> None:
        file_size = os.fstat(self._fh.fileno()).st_size
        head = self._fh.read(HEADER_SIZE)
        self.encrypted = head.startswith(MAGIC)
        self.key_ref: uuid.UUID | None = None
        if not self.encrypted:
            self.size = file_size
            return
        if len(head) < HEADER_SIZE:
            raise EvidenceCorrupt("the encrypted file's header is truncated")
        _, version, chunk_size, ref, prefix = _HEADER.unpack(head)
        if version != VERSION or not 16 <= chunk_size <= _MAX_CHUNK:
            raise EvidenceCorrupt(f"unknown evidence format (version {version})")
        self.key_ref = uuid.UUID(bytes=ref)
        self._header, self._chunk, self._prefix = head, chunk_size, prefix
        body = file_size - HEADER_SIZE
        stride = chunk_size + TAG_SIZE
        self._chunks = -(-body // stride) if body else 0
        if self._chunks == 0 or body - (self._chunks - 1) * stride < TAG_SIZE:
            raise EvidenceCorrupt("the encrypted file is truncated (its last chunk is missing)")
        self.size = body - self._chunks * TAG_SIZE
        self._aead = AESGCM(data_key_load(self.key_ref))

    # io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("evidence is read through its decrypting reader")

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative), short only at the end: callers
        such as the media view's byte ranges read once and expect the whole range."""
        left = max(self.size - self._pos, 0)
        size = left if size is None or size < 0 else min(size, left)
        if not self.encrypted:
            self._fh.seek(self._pos)
            data = self._fh.read(size)
            self._pos += len(data)
            return data
        parts: list[bytes] = []
        while size > 0:
            index, offset = divmod(self._pos, self._chunk)
            plain = self._decrypt(index)
            piece = plain[offset : offset + size]  # the whole chunk is not copied
            if not piece:
                break
            parts.append(piece)
            self._pos += len(piece)
            size -= len(piece)
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._pos >= self.size or not len(view):
            return 0
        if not self.encrypted:
            self._fh.seek(self._pos)
            n = self._fh.readinto(view)
            self._pos += n
            return n
        index, offset = divmod(self._pos, self._chunk)
        plain = self._decrypt(index)
        n = min(len(view), len(plain) - offset)
        view[:n] = plain[offset : offset + n]
        self._pos += n
        return n

    def _decrypt(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        stride = self._chunk + TAG_SIZE
        self._fh.seek(HEADER_SIZE + index * stride)
        sealed = self._fh.read(stride)
        last = index == self._chunks - 1
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, index, last), sealed, self._header)
        except InvalidTag:
            raise EvidenceCorrupt(
                f"chunk {index} of the encrypted file fails authentication (tampered, corrupted, "
                "truncated or extended)"
            ) from None
        self._cached = (index, plain)
        return plain

    def close(self) -> None:
        self._fh.close()
        self._cached = None
        super().close()


def evidence_open(path: str | os.PathLike[str]) -> EvidenceReader:
    """Open an evidence file (encrypted or legacy plaintext) for reading its plaintext."""
    return EvidenceReader(path)


def evidence_read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole plaintext of a (small) evidence file."""
    with evidence_open(path) as reader:
        return reader.read()


@dataclass(frozen=True)
class Digests:
    sha256: str
    md5: str
    sha1: str
    size: int
    encrypted: bool


def _copy_digesting(reader: EvidenceReader, out: BinaryIO | None) -> Digests:
    sha256, md5, sha1 = hashlib.sha256(), hashlib.md5(), hashlib.sha1()  # noqa: S324 (list ids)
    size = 0
    while True:
        block = reader.read(_COPY)
        if not block:
            break
        sha256.update(block)
        md5.update(block)
        sha1.update(block)
        size += len(block)
        if out is not None:
            out.write(block)
    return Digests(sha256.hexdigest(), md5.hexdigest(), sha1.hexdigest(), size, reader.encrypted)


def evidence_digests(path: str | os.PathLike[str]) -> Digests:
    """SHA-256, MD5 and SHA-1 of the plaintext, decrypting (and authenticating every chunk) on
    the way: raises EvidenceCryptoError when it can't be read."""
    with evidence_open(path) as reader:
        return _copy_digesting(reader, None)


def evidence_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the plaintext only (the media view's custody check), authenticating every
    chunk on the way."""
    digest = hashlib.sha256()
    with evidence_open(path) as reader:
        while block := reader.read(_COPY):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Plaintext:
    """A decrypted working copy for a decoder that needs a path (PIL, the video child)."""

    path: Path
    digests: Digests


@contextmanager
def evidence_plaintext(path: str | os.PathLike[str]) -> Iterator[Plaintext]:
    """A plaintext path for the file at `path`, with its digests taken while decrypting.

    An encrypted file is decrypted into an owner-only temporary file in the evidence store's
    private staging directory, deleted when the block ends (however it ends). A legacy
    plaintext file is used where it is.
    """
    with evidence_open(path) as reader:
        if not reader.encrypted:
            yield Plaintext(Path(path), _copy_digesting(reader, None))
            return
        staging = Path(settings.EVIDENCE_ROOT) / "staging"
        staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(dir=staging, prefix="work-")
        work = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                digests = _copy_digesting(reader, out)
            yield Plaintext(work, digests)
        finally:
            work.unlink(missing_ok=True)


def evidence_staging_sweep(*, older_than_seconds: int) -> int:
    """Delete plaintext left in the evidence store's staging directory by a crash (an upload
    being validated, a worker's working copy): anything older than any live one can be.
    Returns how many files went."""
    staging = Path(settings.EVIDENCE_ROOT) / "staging"
    if not staging.is_dir():
        return 0
    cutoff = timezone.now().timestamp() - older_than_seconds
    removed = 0
    for entry in staging.iterdir():
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
