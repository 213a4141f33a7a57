"""Hand-built files for media tests: a PNG whose header lies, and a writer into a temp dir.

Pure Python (no Django), so the media tests can run without it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int, *, colour_type: int = 0) -> bytes:
    """A PNG whose IHDR claims ``width x height`` with a few bytes of pixel data: a cheap bomb.

    8 bits per sample; colour type 0 is greyscale, 2 is RGB.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
