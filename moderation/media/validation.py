"""Validate an uploaded media file before anything else touches it.

Pure Python (Pillow only); no Django import. The upload view calls :func:`validate_media` on the
stored temporary file and turns :class:`MediaRejected` into a form error (``exc.message``) and an
audit code (``exc.code``).

What is trusted: only the file's bytes. The client's file name and declared content type are never
consulted -- a PNG named ``.jpg`` is a PNG, and a text file named ``.jpg`` is rejected.

Cost: header parsing plus one cheap integrity decode for images (a JPEG is decoded at 1/8 scale,
which still walks its whole entropy-coded stream); videos are checked by magic bytes and a walk of
their container's headers (no codec) and never decoded here.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from core.errors import DomainError

from .formats import register as register_formats

register_formats()

__all__ = [
    "IMAGE_MIMES",
    "VIDEO_MIMES",
    "MediaRejected",
    "SniffResult",
    "sniff_mime",
    "validate_media",
]

IMAGE_MIMES: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
    "image/avif": "AVIF",
}
# Decoded only in workers: their integrity is checked when they are hashed, not at intake.
_HEADER_ONLY_FORMATS = frozenset({"HEIF", "AVIF"})
VIDEO_MIMES: frozenset[str] = frozenset({"video/mp4", "video/webm", "video/quicktime"})

SNIFF_BYTES = 64  # enough for every signature below, including the WebM DocType

# ISO base-media (ftyp) brands that are still images, not video: HEIF/HEIC and AVIF share the
# container with MP4 and must not be accepted as video/mp4.
_HEIC_FTYP_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_FTYP_BRANDS = frozenset({b"avif", b"avis"})
# Top-level atoms an old QuickTime file may start with (no ftyp box).
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


class MediaRejected(DomainError):
    """The upload is refused. ``code`` is machine-readable, ``message`` is for people.

    Codes: ``empty_file``, ``too_large`` (HTTP 413), ``unsupported_type``,
    ``decompression_bomb``, ``truncated``, ``corrupt`` (HTTP 400).
    """

    field = None

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = 413 if code == "too_large" else 400

    def __repr__(self) -> str:
        return f"MediaRejected(code={self.code!r}, message={self.message!r})"


@dataclass(frozen=True)
class SniffResult:
    """What the bytes say the file is. ``width``/``height`` are ``None`` for videos."""

    mime: str
    kind: str
    width: int | None
    height: int | None


def sniff_mime(head: bytes) -> str | None:
    """MIME type from the first bytes of a file (magic numbers), or ``None`` if not supported.

    Recognises image/jpeg, image/png, image/gif, image/webp, image/heic, image/avif, video/mp4,
    video/webm and video/quicktime. Pass at least the first 64 bytes.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        # EBML: Matroska and WebM share it; only the DocType says which.
        return "video/webm" if b"webm" in head[:SNIFF_BYTES] else None
    box_type = head[4:8]
    if box_type == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in _AVIF_FTYP_BRANDS:
            return "image/avif"
        if brand in _HEIC_FTYP_BRANDS:
            # A generic HEIF brand (mif1) may carry AV1 pictures: AVIF says so among the
            # compatible brands that follow.
            compatible = head[16 : 8 + int.from_bytes(head[:4], "big")]
            return "image/avif" if b"avif" in compatible else "image/heic"
        if len(brand) < 4:
            return None
        return "video/mp4"
    if box_type in _QUICKTIME_ATOMS:
        return "video/quicktime"
    return None


def _reject_bomb(width: int, height: int, max_pixels: int) -> MediaRejected:
    return MediaRejected(
        "decompression_bomb",
        f"The image is {width}x{height} pixels, more than the {max_pixels:,} allowed; "
        "it was not decoded.",
    )


def _open_header(path: str | os.PathLike[str], fmt: str, max_pixels: int) -> Image.Image:
    """Open only the image header with the plugin the magic bytes named; check the pixel count.

    Pillow's own DecompressionBombError/Warning fire inside ``Image.open``; both become
    ``decompression_bomb``. Warnings are recorded, not printed, so they don't leak into logs.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # formats=: a file whose magic says PNG is parsed as PNG or not at all.
            image = Image.open(path, formats=[fmt])
        except Image.DecompressionBombError:
            raise MediaRejected(
                "decompression_bomb",
                "The image declares more pixels than can be decoded safely; it was not decoded.",
            ) from None
        except (UnidentifiedImageError, SyntaxError, ValueError, OSError, EOFError):
            raise MediaRejected(
                "corrupt",
                f"The file starts like a {fmt} image but its header could not be read.",
            ) from None
    width, height = image.size
    if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
        image.close()
        raise _reject_bomb(width, height, max_pixels)
    if width * height > max_pixels:
        image.close()
        raise _reject_bomb(width, height, max_pixels)
    if width < 1 or height < 1:
        image.close()
        raise MediaRejected("corrupt", "The image declares zero width or height.")
    return image


def _check_decodes(path: str | os.PathLike[str], image: Image.Image, fmt: str) -> None:
    """Decode cheaply to find truncated or corrupt pixel data; raise :class:`MediaRejected`.

    Steps:
    1. PNG: ``verify()`` on a fresh handle checks every chunk's CRC without inflating pixels.
    2. JPEG: ask for the smallest DCT scale (1/8) and luma only; libjpeg still reads the whole
       entropy-coded stream, so a cut-off file is noticed at ~1/64 of the decoding work.
    3. All: ``load()``. Pillow raises "image file is truncated" when data runs out (we never set
       ``ImageFile.LOAD_TRUNCATED_IMAGES``, which would silently grey-fill the rest).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "PNG":
            try:
                with Image.open(path, formats=["PNG"]) as verifier:
                    verifier.verify()
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise _decode_failure(exc, fmt) from None
        if fmt == "JPEG":
            image.draft("L", (max(1, image.width // 8), max(1, image.height // 8)))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise _decode_failure(exc, fmt) from None


def _decode_failure(exc: BaseException, fmt: str) -> MediaRejected:
    text = str(exc).lower()
    if "truncated" in text or isinstance(exc, EOFError) or "end of" in text:
        return MediaRejected(
            "truncated", f"The {fmt} image is cut off: the file ends before the image data does."
        )
    return MediaRejected("corrupt", f"The {fmt} image data is damaged and cannot be decoded.")


def validate_media(path: str | os.PathLike[str], *, max_bytes: int, max_pixels: int) -> SniffResult:
    """Check an uploaded file and say what it is; raise :class:`MediaRejected` if refused.

    Order matters -- cheapest and most dangerous checks first:
    1. Size from ``stat``: zero bytes -> ``empty_file``; more than ``max_bytes`` -> ``too_large``.
    2. Magic bytes -> MIME; unknown -> ``unsupported_type`` (whatever the file is called).
    3. Video: the container's structure is walked (box or element headers only, pure Python:
       no codec runs here) -> ``corrupt`` if it is not a well-formed MP4/QuickTime with a
       ``moov`` holding a track, or a WebM whose EBML header is followed by a Segment. A real
       file cut short is accepted (evidence; hashing records why it fails). Never decoded
       here (width/height ``None``).
    4. Image: header only; more than ``max_pixels`` pixels -> ``decompression_bomb`` *before*
       any pixel is decoded. An unreadable header -> ``corrupt``.
    5. Image: cheap integrity decode -> ``truncated`` or ``corrupt``. HEIC and AVIF (HEVC and
       AV1 pictures, costly to decode) are checked when a worker hashes them instead: a
       damaged one ends ``hash_status=failed`` with its reason, stored and reviewable.
    """
    size = os.stat(path).st_size
    if size == 0:
        raise MediaRejected("empty_file", "The file is empty.")
    if size > max_bytes:
        raise MediaRejected(
            "too_large", f"The file is {size:,} bytes; the limit is {max_bytes:,} bytes."
        )

    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    mime = sniff_mime(head)
    if mime is None:
        raise MediaRejected(
            "unsupported_type",
            "This file type is not supported. Upload a JPEG, PNG, GIF, WebP, HEIC or AVIF "
            "image, or an MP4, WebM or QuickTime video.",
        )
    if mime in VIDEO_MIMES:
        _check_container(path, mime, size)
        return SniffResult(mime=mime, kind="video", width=None, height=None)

    fmt = IMAGE_MIMES[mime]
    image = _open_header(path, fmt, max_pixels)
    with image:
        width, height = image.size
        if fmt not in _HEADER_ONLY_FORMATS:
            _check_decodes(path, image, fmt)
    return SniffResult(mime=mime, kind="image", width=width, height=height)


_MAX_BOXES = 100_000


def _boxes(
    handle: Any, start: int, end: int, *, allow_cut: bool = False
) -> tuple[list[tuple[bytes, int, int]], bool]:
    """(type, payload offset, end offset) of the ISO-BMFF boxes in [start, end), and whether
    the last one runs past `end` (a cut-short file, tolerated with `allow_cut`). Raises
    MediaRejected when a header is impossible: a type that is not four printable characters,
    a size smaller than its own header — what junk after a valid magic number looks like."""
    found = []
    offset = start
    while offset < end:
        if len(found) >= _MAX_BOXES:
            raise MediaRejected("corrupt", "The video container has too many boxes.")
        handle.seek(offset)
        header = handle.read(8)
        if len(header) < 8:
            if allow_cut:
                return found, True
            raise MediaRejected("truncated", "The video container is cut short.")
        size = int.from_bytes(header[:4], "big")
        kind = header[4:8]
        payload = offset + 8
        if size == 1:
            large = handle.read(8)
            if len(large) < 8:
                if allow_cut:
                    return found, True
                raise MediaRejected("truncated", "The video container is cut short.")
            size = int.from_bytes(large, "big")
            payload += 8
        elif size == 0:
            size = end - offset
        if not all(32 <= b < 127 for b in kind) or size < payload - offset:
            raise MediaRejected("corrupt", "The file is not a well-formed video container.")
        found.append((kind, payload, min(offset + size, end)))
        if offset + size > end:
            if allow_cut:
                return found, True
            raise MediaRejected("truncated", "The video container is cut short.")
        offset += size
    return found, False


def _read_vint(handle: Any) -> int | None:
    first = handle.read(1)
    if not first or first[0] == 0:
        return None
    length = 8 - first[0].bit_length() + 1
    rest = handle.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = first[0] & (0xFF >> length)
    for byte in rest:
        value = (value << 8) | byte
    return value


def _check_container(path: str | os.PathLike[str], mime: str, size: int) -> None:
    """A video that passed the magic-byte sniff must also have the structure of one: the
    probe's "valid magic bytes, then junk" MP4 is refused here instead of being stored."""
    with open(path, "rb") as handle:
        if mime == "video/webm":
            handle.seek(0)
            if handle.read(4) != b"\x1a\x45\xdf\xa3":
                raise MediaRejected("corrupt", "The file is not a well-formed WebM video.")
            header_size = _read_vint(handle)
            if header_size is None or handle.tell() + header_size > size:
                raise MediaRejected("corrupt", "The file is not a well-formed WebM video.")
            handle.seek(handle.tell() + header_size)
            if handle.read(4) != b"\x18\x53\x80\x67":  # Segment
                raise MediaRejected("corrupt", "The WebM file has no Segment after its header.")
            return
        # A real recording cut short (an interrupted upload or copy) is still evidence: it is
        # kept, its digests matched, and hashing records why it could not be decoded. What is
        # refused is a file whose boxes are not boxes at all.
        top, cut = _boxes(handle, 0, size, allow_cut=True)
        if len(top) < 2 and not cut:
            raise MediaRejected("corrupt", "The video holds nothing after its file-type box.")
        moov = [(start, end) for kind, start, end in top if kind == b"moov"]
        if not moov:
            if cut:
                return
            raise MediaRejected("corrupt", "The video has no 'moov' box (no track headers).")
        children, moov_cut = _boxes(handle, *moov[0], allow_cut=cut)
        if not moov_cut and not any(kind == b"trak" for kind, _, _ in children):
            raise MediaRejected("corrupt", "The video's 'moov' box holds no track.")
