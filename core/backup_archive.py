"""The backup archive format: a stream of named entries, encrypted with AES-256-GCM in chunks.

Nothing here knows about the database or the evidence store (core.backup does); this module
only turns entries into an authenticated, encrypted byte stream and back, without ever holding
a whole entry, let alone the archive, in memory.

Layout (all integers big-endian):

    header   = MAGIC (10 bytes) | key id (8) | salt (32) | chunk size (u32)
    chunk i  = AES-256-GCM(data key, nonce_i, plaintext_i, aad=header)
    nonce_i  = i as 11 bytes | 0x01 for the last chunk, else 0x00

The data key is HKDF-SHA256(backup key, salt), so every archive has its own key and the
counter nonces never repeat under one key. This is the STREAM construction (Hoang, Reyhanitabar,
Rogaway, Vizár 2015) that `age` and Tink's streaming AEAD use: a changed byte fails its chunk's
tag, reordered or dropped chunks fail their nonces, and a stream cut at a chunk boundary lacks
the chunk flagged last — each reported as a different, clear error. The key id (a hash of the
key, not the key) lets a wrong key be named as such before any decryption is attempted.

Inside the encryption, the plaintext is a sequence of entries:

    entry    = b"E" | u32 header length | header JSON {"name": …} | blocks | u32 0 | SHA-256 (32)
    block    = u32 length | bytes
    end      = b"Z"

Imports nothing from the project.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import struct
from collections.abc import Iterator
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"SGBACKUP1\n"
CHUNK_SIZE = 1024 * 1024
_HEADER = struct.Struct(f">{len(MAGIC)}s8s32sI")
_TAG = 16
_U32 = struct.Struct(">I")
BLOCK_SIZE = 256 * 1024


class ArchiveError(Exception):
    """The archive cannot be read: wrong key, altered, truncated or not a backup at all."""


def parse_key(value: str) -> bytes:
    """A backup key as configured: 32 random bytes, base64 (standard or URL-safe)."""
    try:
        raw = base64.urlsafe_b64decode(value.strip().replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"decodes to {len(raw)} bytes, not 32")
    return raw


def key_id(key: bytes) -> str:
    """A public name for a key (16 hex digits of a domain-separated hash); never the key."""
    return hashlib.sha256(b"safeguard-backup-key-id\x00" + key).hexdigest()[:16]


def _data_key(key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=b"safeguard-backup v1 data"
    ).derive(key)
    return AESGCM(derived)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class EncryptingWriter:
    """A write-only file object: buffers at most one chunk, encrypts it and writes it on.

    A chunk is written only once more data follows it, so `close()` always has a (possibly
    empty) final chunk to flag as the last one.
    """

    def __init__(self, sink: IO[bytes], key: bytes, *, chunk_size: int = CHUNK_SIZE) -> None:
        salt = os.urandom(32)
        self._header = _HEADER.pack(MAGIC, bytes.fromhex(key_id(key)), salt, chunk_size)
        self._aead = _data_key(key, salt)
        self._sink = sink
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False
        sink.write(self._header)

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > self._chunk_size:
            chunk = bytes(self._buffer[: self._chunk_size])
            del self._buffer[: self._chunk_size]
            self._emit(chunk, last=False)
        return len(data)

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        nonce = _nonce(self._counter, last)
        self._sink.write(self._aead.encrypt(nonce, chunk, self._header))
        self._counter += 1

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True


def archive_key_id(source: IO[bytes]) -> str:
    """The key id an archive names in its header (reads the header only)."""
    header = source.read(_HEADER.size)
    if len(header) < _HEADER.size or not header.startswith(MAGIC):
        raise ArchiveError("not a Safeguard backup archive (bad header)")
    return _HEADER.unpack(header)[1].hex()


def decrypted_chunks(source: IO[bytes], keys: list[bytes]) -> Iterator[bytes]:
    """The plaintext, chunk by chunk, each authenticated before it is yielded."""
    header = source.read(_HEADER.size)
    if len(header) < _HEADER.size or not header.startswith(MAGIC):
        raise ArchiveError("not a Safeguard backup archive (bad header)")
    _, named_id, salt, chunk_size = _HEADER.unpack(header)
    key = next((k for k in keys if key_id(k) == named_id.hex()), None)
    if key is None:
        configured = ", ".join(key_id(k) for k in keys) or "none"
        raise ArchiveError(
            f"wrong backup key: the archive was encrypted with key id {named_id.hex()}; "
            f"SAFEGUARD_BACKUP_KEY holds key id(s) {configured}"
        )
    if not 1024 <= chunk_size <= 64 * 1024 * 1024:
        raise ArchiveError("the archive header was altered (implausible chunk size)")
    aead = _data_key(key, salt)
    counter = 0
    pending = source.read(chunk_size + _TAG)
    while True:
        following = source.read(chunk_size + _TAG)
        last = not following
        try:
            plaintext = aead.decrypt(_nonce(counter, last), pending, header)
        except InvalidTag:
            if last and _decrypts_as_middle(aead, counter, pending, header):
                raise ArchiveError(
                    "the archive is truncated: it ends without its final chunk "
                    f"(after {counter + 1} chunks)"
                ) from None
            if last:
                raise ArchiveError(
                    f"the archive is truncated or its end was altered: its last chunk "
                    f"({counter}) fails authentication"
                ) from None
            raise ArchiveError(
                f"the archive was altered: chunk {counter} fails authentication"
            ) from None
        yield plaintext
        if last:
            return
        counter += 1
        pending = following


def _decrypts_as_middle(aead: AESGCM, counter: int, data: bytes, header: bytes) -> bool:
    try:
        aead.decrypt(_nonce(counter, False), data, header)
    except InvalidTag:
        return False
    return True


class _PlainReader:
    """Exact-size reads over the decrypted chunk stream (each byte copied once)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._pos = 0

    def read_exact(self, size: int) -> bytes:
        available = len(self._chunk) - self._pos
        if available >= size:
            data = self._chunk[self._pos : self._pos + size]
            self._pos += size
            return data
        parts = [self._chunk[self._pos :]]
        need = size - available
        self._chunk, self._pos = b"", 0
        while need > 0:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise ArchiveError("the archive ends in the middle of an entry (truncated)")
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._chunk, self._pos = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        return b"".join(parts)

    def at_end(self) -> bool:
        if self._pos < len(self._chunk):
            return False
        for chunk in self._chunks:
            if chunk:
                self._chunk, self._pos = chunk, 0
                return False
        return True


class ArchiveWriter:
    """Entries into an EncryptingWriter; each entry's SHA-256 and size are returned."""

    def __init__(self, sink: IO[bytes], key: bytes, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._out = EncryptingWriter(sink, key, chunk_size=chunk_size)

    def add_stream(self, name: str, source: IO[bytes]) -> dict[str, Any]:
        header = json.dumps({"name": name}).encode()
        self._out.write(b"E" + _U32.pack(len(header)) + header)
        digest = hashlib.sha256()
        size = 0
        while block := source.read(BLOCK_SIZE):
            digest.update(block)
            size += len(block)
            self._out.write(_U32.pack(len(block)) + block)
        self._out.write(_U32.pack(0) + digest.digest())
        return {"sha256": digest.hexdigest(), "size": size}

    def add_bytes(self, name: str, data: bytes) -> dict[str, Any]:
        return self.add_stream(name, io.BytesIO(data))

    def close(self) -> None:
        self._out.write(b"Z")
        self._out.close()


class Entry:
    """One entry's blocks, iterated once; afterwards `sha256` and `size` hold what was read
    (already checked against the checksum the archive recorded for it)."""

    def __init__(self, name: str, reader: _PlainReader) -> None:
        self.name = name
        self._reader = reader
        self.sha256 = ""
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        while True:
            (length,) = _U32.unpack(self._reader.read_exact(4))
            if length == 0:
                break
            block = self._reader.read_exact(length)
            digest.update(block)
            self.size += length
            yield block
        if self._reader.read_exact(32) != digest.digest():
            raise ArchiveError(f"{self.name}: its checksum does not match its content")
        self.sha256 = digest.hexdigest()


def read_entries(source: IO[bytes], keys: list[bytes]) -> Iterator[tuple[str, Entry]]:
    """(name, entry) per entry, in order. The caller must iterate each entry's blocks before
    asking for the next entry; the last block is followed by the check of its SHA-256."""
    reader = _PlainReader(decrypted_chunks(source, keys))
    while True:
        marker = reader.read_exact(1)
        if marker == b"Z":
            if not reader.at_end():
                raise ArchiveError("the archive holds data after its end marker")
            return
        if marker != b"E":
            raise ArchiveError("the archive's entry framing is corrupt")
        (length,) = _U32.unpack(reader.read_exact(4))
        try:
            name = str(json.loads(reader.read_exact(length))["name"])
        except (ValueError, KeyError, TypeError):
            raise ArchiveError("the archive holds an unreadable entry header") from None
        entry = Entry(name, reader)
        yield name, entry
        if not entry.sha256:
            raise ArchiveError(f"{name}: entry not fully read")  # a programming error
