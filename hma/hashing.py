"""Hash an upload for HMA's /h/hash and POST /m/lookup, keeping decoding out of the web process.

HMA hashes the bytes of the one multipart file whose field names its content type (``photo``
or ``video``) with every enabled signal type of that content type (OpenMediaMatch
blueprints/hashing.py, ``hash_media_from_form_data``). Here, as at intake
(moderation.services.intake: bytes are sniffed and hashed, images decoded by workers):

1. The view refuses a body larger than HMA_MAX_UPLOAD_BYTES from its Content-Length, before
   reading it; the upload's own size is checked again here.
2. The type comes from the first bytes only (``sniff_mime``), never from the file name or the
   declared type, and must agree with the field: a video sent as ``photo`` is refused.
3. SHA-256, MD5 and SHA-1 stream over the bytes: no decoding.
4. Perceptual hashes come from the limited child process the worker uses
   (moderation.media.video): a photo's PDQ (with its quality and rotated/mirrored forms),
   pHash and dHash; a video's vPDQ frames. It runs synchronously, with HMA_HASH_TIMEOUT_SECONDS
   as its wall-clock and CPU limit (under gunicorn's request timeout), the worker's memory,
   pixel and duration limits, and no contact-sheet thumbnails. A decoder crash, a bomb or a
   timeout ends the child and becomes a 400, never a 5xx.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings

from moderation.media.hashing import MediaHashes, file_digests
from moderation.media.validation import VIDEO_MIMES, MediaRejected, sniff_mime
from moderation.media.video import (
    FrameHash,
    VideoError,
    VideoLimits,
    hash_image_isolated,
    hash_video_isolated,
)
from moderation.services.hashing import video_limits

from .errors import ContentTypeMismatch, UnhashableMedia
from .signal_types import PHOTO, VIDEO, SignalType, vpdq_dumps

_PERCEPTUAL_PHOTO = frozenset({"pdq", "phash", "dhash"})
_SNIFF_BYTES = 64


@dataclass(frozen=True)
class UploadHashes:
    """An upload's signals, and what a lookup needs beyond them to match as intake does."""

    content_type: str
    signals: dict[str, str]
    pdq_quality: int | None = None
    pdq_dihedral: tuple[str, ...] = ()
    frames: tuple[FrameHash, ...] = ()


@contextlib.contextmanager
def _upload_path(upload: Any) -> Iterator[Path]:
    """A file path holding the upload: Django's temporary file, or a private copy of a small
    in-memory upload (removed afterwards)."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(prefix="hma-upload-") as copy:
        for chunk in upload.chunks():
            copy.write(chunk)
        copy.flush()
        yield Path(copy.name)


def _sniff(path: Path, content_type: str) -> None:
    """Refuse an empty file, an unsupported type, or bytes of another content type."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head:
        raise MediaRejected("empty_file", "The file is empty.")
    mime = sniff_mime(head)
    if mime is None:
        raise MediaRejected(
            "unsupported_type",
            "This file type is not supported. Upload a JPEG, PNG, GIF, WebP, HEIC or AVIF "
            "photo, or an MP4, WebM or QuickTime video.",
        )
    kind = VIDEO if mime in VIDEO_MIMES else PHOTO
    if kind != content_type:
        raise ContentTypeMismatch(
            f"The {content_type} field holds a {kind} ({mime}); send it as {kind}."
        )


def _limits() -> VideoLimits:
    seconds = settings.HMA_HASH_TIMEOUT_SECONDS
    return replace(video_limits(), timeout_seconds=seconds, cpu_seconds=seconds, thumbnails=1)


def upload_hash(*, content_type: str, upload: Any, signal_types: list[SignalType]) -> UploadHashes:
    """The upload's value for each signal type (see the module docstring); MediaRejected,
    ContentTypeMismatch or UnhashableMedia (all 4xx) when it can't be hashed."""
    limit = settings.HMA_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise MediaRejected(
            "too_large", f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes."
        )
    names = {st.name for st in signal_types}
    with _upload_path(upload) as path:
        _sniff(path, content_type)
        sha256, md5, sha1 = file_digests(path)
        digests = {
            "sha256": sha256,
            "sha1": sha1,
            "md5": md5,
            "photo_md5": md5,
            "video_md5": md5,
        }
        image: MediaHashes | None = None
        frames: tuple[FrameHash, ...] = ()
        try:
            if content_type == PHOTO and names & _PERCEPTUAL_PHOTO:
                image = hash_image_isolated(
                    path, max_pixels=settings.SAFEGUARD_MAX_PIXELS, limits=_limits()
                )
            if content_type == VIDEO and "vpdq" in names:
                video = hash_video_isolated(
                    path,
                    seconds_per_hash=settings.SAFEGUARD_VIDEO_HASH_INTERVAL_MS / 1000,
                    limits=_limits(),
                )
                frames = tuple(video.frames)
        except VideoError as exc:
            raise UnhashableMedia(f"The {content_type} could not be hashed: {exc}") from None
    signals: dict[str, str] = {}
    for st in signal_types:
        if st.name in digests:
            signals[st.name] = digests[st.name]
        elif st.name == "vpdq":
            signals[st.name] = vpdq_dumps(list(frames))
        elif image is not None:
            value = getattr(image, st.name, None)
            if value:
                signals[st.name] = value
    return UploadHashes(
        content_type=content_type,
        signals=signals,
        pdq_quality=image.pdq_quality if image is not None else None,
        pdq_dihedral=tuple(image.pdq_dihedral) if image is not None else (),
        frames=frames,
    )
