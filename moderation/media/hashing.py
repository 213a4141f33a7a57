"""Cryptographic and perceptual hashes of uploaded media, from one decode.

Pure Python (Pillow, numpy, imagehash); no Django import, so Celery workers, management commands and
benchmarks can all use it.

Two pipelines compute the same :class:`MediaHashes`:

* :func:`compute_hashes` -- the production pipeline. It decodes once: a JPEG at about half size
  and luma only (``Image.draft``), other formats at full size. It computes PDQ from that luma plane
  with a numpy port of the reference PDQ algorithm (bit-identical to ``pdqhash`` on the same
  pixels, ~50x faster), using the filter geometry of the original size; and it builds the two
  tiny thumbnails imagehash's pHash and dHash need with Pillow's exact LANCZOS arithmetic, so
  imagehash itself still computes those hashes. ``pdqhash`` is not needed at run time.
* :func:`compute_hashes_naive` -- the baseline: full-size RGB decode, then ``pdqhash.compute`` and
  imagehash's ``phash``/``dhash`` on the full image. It exists to measure the fast pipeline against
  (speed and hash drift); production code should not call it.

Hash formats:

* ``sha256``/``md5``/``sha1``: lowercase hex of the file bytes (exact-match hash lists).
* ``pdq``: 64 hex characters in the canonical PDQ format of Meta's reference implementation
  (16-bit words 15..0, 4 hex digits each), so values compare directly with PDQ hash lists.
* ``phash``/``dhash``: 16 hex characters, ``str(imagehash.ImageHash)``.

Perceptual hashes are computed on the pixels as stored: EXIF orientation is *not* applied (neither
pipeline does; imagehash and pdqhash hash the pixels they are given).

Threads: the matrix products use numpy's BLAS, one thread per process (set in `config/__init__.py`;
the products are small, extra BLAS threads only oversubscribe cores).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import imagehash
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from moderation.media.validation import sniff_mime

__all__ = [
    "DIHEDRAL",
    "HashingError",
    "MediaHashes",
    "compute_hashes",
    "compute_hashes_naive",
    "file_digests",
    "hamming_hex",
    "pdq_dihedral_from_luma",
    "pdq_from_luma",
    "pdq_is_degenerate",
]

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough that hashlib, not the Python loop, dominates.

# PDQ's reference tooling hashes images of about 512 px: the tent filter is tuned for it and
# hashing from a JPEG decoded below that (1/4 scale of 1 MP) drifts up to ~26 bits of 256.
PDQ_MIN_LONG_SIDE = 512
# Lossless formats are decoded at full size anyway (no DCT scaling). Up to this many pixels the
# pipeline hashes them at full size, which reproduces the naive hashes bit for bit; above it, it
# box-reduces first so that a 50 MP PNG doesn't spend seconds in the matrix products.
EXACT_MAX_PIXELS = 4_000_000
MAX_EXIF_VALUE_CHARS = 256

_VIDEO_MAGIC_MIMES = ("video/mp4", "video/webm", "video/quicktime")

# EXIF tags whose values are opaque binary blobs or pointers, never useful as text.
_SKIPPED_EXIF_TAGS = frozenset(
    {
        0x927C,  # MakerNote: vendor binary, often tens of KB
        0xC4A5,  # PrintImageMatching
        0x8769,  # ExifOffset: pointer to the Exif IFD (read separately below)
        0x8825,  # GPSInfo: pointer to the GPS IFD (read separately below)
        0xA005,  # InteroperabilityOffset
        0x0201,  # JPEGInterchangeFormat: thumbnail offset
        0x0202,  # JPEGInterchangeFormatLength
        0x02BC,  # XMLPacket (XMP): can be huge; not EXIF text
        0x8773,  # InterColorProfile (ICC bytes)
        0x83BB,  # IPTC/NAA binary
    }
)


class HashingError(Exception):
    """The file could not be hashed as an image (undecodable, truncated or too many pixels).

    The message is safe to store (``hash_status=failed`` with ``str(exc)``); it never contains
    file content.
    """


@dataclass(frozen=True)
class MediaHashes:
    """All hashes and cheap metadata of one media file."""

    sha256: str
    md5: str
    sha1: str
    pdq: str | None = None
    pdq_quality: int | None = None
    phash: str | None = None
    dhash: str | None = None
    width: int | None = None
    height: int | None = None
    exif: dict[str, str] = field(default_factory=dict)
    # The PDQ hashes of the image rotated and mirrored (DIHEDRAL[1:]), for matching copies
    # that were turned or flipped.
    pdq_dihedral: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """A JSON-serialisable dict (e.g. for a Celery result or a JSONField)."""
        data = asdict(self)
        data["exif"] = dict(self.exif)
        data["pdq_dihedral"] = list(self.pdq_dihedral)
        return data


# ---------------------------------------------------------------------------------------------
# Cryptographic digests and Hamming distance


def file_digests(path: str | os.PathLike[str]) -> tuple[str, str, str]:
    """Return ``(sha256, md5, sha1)`` lowercase hex of the file, in one streaming pass.

    Reads 1 MiB at a time so a multi-gigabyte video never sits in memory, and reads the file once
    for all three digests.
    """
    # MD5 and SHA-1 identify files in legacy hash lists; they protect nothing here, so they are
    # marked as not used for security (which also keeps them available on FIPS builds).
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            sha256.update(chunk)
            md5.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), md5.hexdigest(), sha1.hexdigest()


def pdq_is_degenerate(pdq: str) -> bool:
    """A PDQ hash that carries little information: what flat or near-uniform images hash to.

    PDQ sets the bits of the coefficients above their median, so a real hash has ~128 of its
    256 bits set (exactly 127 or 128 unless coefficients tie, as they do in a flat image); and
    a featureful image spreads them, so its 64 hex digits take many values. A hash with fewer
    than 64 or more than 192 bits set, or fewer than 5 distinct hex digits, is degenerate. (A
    uniformly random hash is 8 standard deviations from either popcount bound.)
    """
    bits = int(pdq, 16).bit_count()
    return not 64 <= bits <= 192 or len(set(pdq.lower())) < 5


def hamming_hex(a: str, b: str) -> int:
    """Number of differing bits between two equal-length hex hashes (PDQ, pHash, dHash).

    Raises ``ValueError`` if the lengths differ or a string is not hex: comparing a PDQ hash with
    a pHash is a bug, not a large distance.
    """
    if len(a) != len(b):
        raise ValueError(f"hashes differ in length ({len(a)} vs {len(b)} hex chars)")
    return (int(a, 16) ^ int(b, 16)).bit_count()


# ---------------------------------------------------------------------------------------------
# PDQ in numpy


def _box_window_bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output index ``o``, the input range ``[lo, hi)`` of the reference PDQ 1-D box filter.

    The reference ``box1DFloat`` averages a window of ``window`` samples placed
    ``(window - half)`` samples left and ``half - 1`` right of ``o`` (``half = (window + 2) // 2``)
    and, at both ends, averages only the samples that exist.
    """
    half = (window + 2) // 2
    out = np.arange(n)
    lo = np.maximum(0, out - (window - half))
    hi = np.minimum(n, out + half)
    return lo, hi


@functools.lru_cache(maxsize=256)
def _pdq_axis_weights(n: int, scale: int) -> np.ndarray:
    """Linear map from one image axis to PDQ's 64 samples, as a ``64 x ceil(n / scale)`` matrix.

    The reference PDQ downsampler is linear and separable: along each axis it runs the same box
    filter twice (Jarosz: two box passes approximate a tent filter) and then keeps 64 samples at
    the block centres. Along one axis that is a matrix ``W`` (64 x n); the 64x64 buffer is
    ``W_rows @ luma @ W_cols.T``. Computing it this way costs ~n multiply-adds per output row
    instead of filtering every pixel four times, and reproduces the reference output.

    Steps:
    1. Window size as in the reference: ``ceil(n / 128)`` (two passes of half a 64th each).
    2. First pass, rows at the 64 sample positions ``int((k + 0.5) * n / 64)``: row ``k`` is
       ``1/count`` over the window ``[lo, hi)`` of its sample position.
    3. Second pass: ``W[k, i] = sum over o with lo[o] <= i < hi[o] of first[k, o] / count[o]``.
       Since ``lo`` and ``hi`` are non-decreasing, those ``o`` form a contiguous range
       ``[#(hi <= i), #(lo <= i))``, so each entry is a difference of a cumulative sum.
    4. Fold for a pre-shrunk input: when the pixels were decoded or reduced by ``scale`` (a JPEG
       DCT-scaled decode or ``Image.reduce``), pixel ``j`` of the small image stands for original
       pixels ``j*scale .. j*scale+scale-1``, so its weight is the sum of theirs. This keeps the
       filter geometry of the *original* size, which is what the naive full-size hash uses; simply
       running PDQ on the small image shifts sample centres by half a pixel and drifts ~10 bits.
    """
    window = (n + 2 * 64 - 1) // (2 * 64)
    lo, hi = _box_window_bounds(n, window)
    count = (hi - lo).astype(np.float64)
    samples = ((np.arange(64) + 0.5) * n / 64).astype(np.int64)

    first = np.zeros((64, n), dtype=np.float64)
    for k, position in enumerate(samples):
        first[k, lo[position] : hi[position]] = 1.0 / count[position]

    scaled = first / count[None, :]
    cumulative = np.concatenate([np.zeros((64, 1)), np.cumsum(scaled, axis=1)], axis=1)
    columns = np.arange(n)
    start = np.searchsorted(hi, columns, side="right")  # first o whose window reaches i
    stop = np.searchsorted(lo, columns, side="right")  # one past the last o whose window has i
    weights = cumulative[:, stop] - cumulative[:, start]

    if scale > 1:
        small = -(-n // scale)
        padded = np.zeros((64, small * scale), dtype=np.float64)
        padded[:, :n] = weights
        weights = padded.reshape(64, small, scale).sum(axis=2)
    return np.ascontiguousarray(weights, dtype=np.float32)


@functools.lru_cache(maxsize=256)
def _bands(n: int, scale: int) -> tuple[tuple[int, int], ...]:
    """Per output sample of :func:`_pdq_axis_weights`, the [first, last + 1) of its nonzero
    weights."""
    weights = _pdq_axis_weights(n, scale)
    bands = []
    for row in weights:
        nonzero = np.flatnonzero(row)
        bands.append((int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 0))
    return tuple(bands)


def _pdq_dct_matrix() -> np.ndarray:
    """The reference 16x64 DCT-II basis (rows 1..16, scaled by sqrt(2/64))."""
    rows = np.arange(1, 17, dtype=np.float64)[:, None]
    cols = np.arange(64, dtype=np.float64)[None, :]
    matrix = math.sqrt(2.0 / 64.0) * np.cos((math.pi / 2.0 / 64.0) * rows * (2.0 * cols + 1.0))
    return matrix.astype(np.float32)


_PDQ_DCT = _pdq_dct_matrix()
_PDQ_MIN_HASHABLE_DIM = 5  # reference: smaller images hash to all zeros with quality 0


def pdq_from_luma(
    luma: np.ndarray,
    original_size: tuple[int, int] | None = None,
    scale: int = 1,
) -> tuple[str, int]:
    """PDQ hash (canonical 64-hex) and quality (0-100) of a luma plane.

    ``luma`` is a 2-D array (rows x columns, values 0..255). If it was shrunk from a larger image
    by an integer ``scale`` (JPEG draft or ``Image.reduce``: size ``ceil(original / scale)``),
    pass ``original_size=(width, height)`` of the original: the hash is then that of the original
    size, see :func:`_pdq_axis_weights`.

    Steps (the reference algorithm, ``pdqHash256FromFloatLuma``):
    1. Downsample to 64x64 with the separable tent filter: ``W_rows @ luma @ W_cols.T``.
    2. Quality: sum of truncated ``|difference| * 100 / 255`` of neighbouring samples, / 90,
       capped at 100.
    3. 16x16 DCT of the 64x64 buffer (frequencies 1..16 on both axes).
    4. Bit ``i*16 + j`` is set when coefficient ``[i][j]`` exceeds the median coefficient (the
       128th smallest, as the reference's Torben median returns for 256 values).
    5. Hex: 16-bit words 15..0, so bit 255 is the first hex digit's top bit.
    """
    rows, cols = luma.shape
    if original_size is None:
        width, height = cols, rows
    else:
        width, height = original_size
    if -(-width // scale) != cols or -(-height // scale) != rows:
        raise ValueError(
            f"luma {cols}x{rows} is not {width}x{height} reduced by {scale} (rounded up)"
        )
    if width < _PDQ_MIN_HASHABLE_DIM or height < _PDQ_MIN_HASHABLE_DIM:
        return "0" * 64, 0

    coefficients, quality = _pdq_coefficients(luma, width, height, scale)
    return _pdq_bits(coefficients), quality


def _pdq_coefficients(
    luma: np.ndarray, width: int, height: int, scale: int
) -> tuple[np.ndarray, int]:
    """The 16x16 DCT coefficients of PDQ's 64x64 buffer, and the quality (steps 1-3)."""
    plane = np.asarray(luma, dtype=np.float32)
    row_weights = _pdq_axis_weights(height, scale)
    col_weights = _pdq_axis_weights(width, scale)
    # Each of the 64 row samples reads a narrow band of rows (the tent filter's support): a
    # product per band touches ~1/64 of what a dense product does (1.5 ms -> 0.25 ms at 720p).
    rows_filtered = np.stack(
        [row_weights[k, a:b] @ plane[a:b] for k, (a, b) in enumerate(_bands(height, scale))]
    )
    buffer64 = rows_filtered @ col_weights.T

    # Reference quality metric: int(float) truncates toward zero, then integer sums.
    vertical = np.trunc((buffer64[:-1, :] - buffer64[1:, :]) * np.float32(100.0 / 255.0))
    horizontal = np.trunc((buffer64[:, :-1] - buffer64[:, 1:]) * np.float32(100.0 / 255.0))
    gradient_sum = int(np.abs(vertical).sum() + np.abs(horizontal).sum())
    quality = min(100, gradient_sum // 90)
    return _PDQ_DCT @ buffer64 @ _PDQ_DCT.T, quality


def _pdq_bits(coefficients: np.ndarray) -> str:
    """Steps 4-5: bits above the median coefficient, as canonical hex."""
    flat = coefficients.ravel()
    median = np.partition(flat, 127)[127]
    return np.packbits((flat > median)[::-1]).tobytes().hex()


# The eight symmetries of the square, in the order of the reference's dihedral hashes
# (pdqhash.compute_dihedral): the hash of the image rotated or flipped that way.
DIHEDRAL = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flip_vertical",
    "flip_horizontal",
    "transpose",
    "transverse",
)
# DCT-II frequency k = 1..16 along an axis: mirroring that axis multiplies its coefficient by
# (-1)^k. Rotations are a transpose and a mirror.
_MIRROR = np.array([(-1.0) ** k for k in range(1, 17)], dtype=np.float32)
_DIHEDRAL_OPS = (  # (transpose, mirror rows, mirror columns), matched bit for bit to pdqhash
    (False, False, False),
    (True, True, False),
    (False, True, True),
    (True, False, True),
    (False, True, False),
    (False, False, True),
    (True, False, False),
    (True, True, True),
)


def pdq_dihedral_from_luma(
    luma: np.ndarray,
    original_size: tuple[int, int] | None = None,
    scale: int = 1,
) -> tuple[list[str], int]:
    """The eight dihedral PDQ hashes (see ``DIHEDRAL``) and the quality, from one DCT.

    Rotating or mirroring an image permutes and negates its DCT coefficients, so the hashes of
    all eight rotated and mirrored copies fall out of the original's 16x16 coefficients: a
    transpose for a quarter turn, a sign flip of the odd frequencies for a mirror, then the
    median threshold again (reference: ``pdqDihedralHash256esFromFloatLuma``; bit-identical to
    ``pdqhash.compute_dihedral`` on the same pixels).
    """
    rows, cols = luma.shape
    width, height = original_size if original_size is not None else (cols, rows)
    if width < _PDQ_MIN_HASHABLE_DIM or height < _PDQ_MIN_HASHABLE_DIM:
        return ["0" * 64] * 8, 0
    coefficients, quality = _pdq_coefficients(luma, width, height, scale)
    hashes = []
    for transpose, mirror_rows, mirror_cols in _DIHEDRAL_OPS:
        c = coefficients.T if transpose else coefficients
        if mirror_rows:
            c = c * _MIRROR[:, None]
        if mirror_cols:
            c = c * _MIRROR[None, :]
        hashes.append(_pdq_bits(c))
    return hashes, quality


# ---------------------------------------------------------------------------------------------
# imagehash's thumbnails, computed with Pillow's exact arithmetic

_PILLOW_PRECISION_BITS = 32 - 8 - 2  # Pillow's Resample.c fixed point for 8-bit images


def _lanczos(x: np.ndarray) -> np.ndarray:
    """Pillow's LANCZOS kernel: sinc(x) * sinc(x / 3) on [-3, 3)."""
    out = np.ones_like(x)
    nonzero = x != 0
    px = np.pi * x[nonzero]
    out[nonzero] = (np.sin(px) / px) * (np.sin(px / 3.0) / (px / 3.0))
    return np.where((x >= -3.0) & (x < 3.0), out, 0.0)


@functools.lru_cache(maxsize=256)
def _lanczos_fixed_point(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's fixed-point LANCZOS weights for resizing ``in_size`` -> ``out_size`` samples.

    Returned as an ``in_size x out_size`` float64 matrix of integers (weights * 2**22, rounded
    half away from zero as Pillow's ``normalize_coeffs_8bpc`` does).

    Steps (``precompute_coeffs`` in Pillow's ``Resample.c``):
    1. ``scale = in/out``; the kernel is stretched by ``max(scale, 1)``; support ``3 * that``.
    2. Output ``xx`` is centred at ``(xx + 0.5) * scale``; its taps run from
       ``int(centre - support + 0.5)`` to ``int(centre + support + 0.5)``, clipped to the image.
    3. Tap ``x`` weighs ``lanczos((x - centre + 0.5) / stretch)``; weights are normalised to sum 1,
       then turned into 22-bit fixed point.
    """
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = 3.0 * stretch
    one = float(1 << _PILLOW_PRECISION_BITS)
    matrix = np.zeros((in_size, out_size), dtype=np.float64)
    for out_index in range(out_size):
        centre = (out_index + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        taps = np.arange(first, last, dtype=np.float64)
        weights = _lanczos((taps - centre + 0.5) * (1.0 / stretch))
        total = weights.sum()
        if total != 0.0:
            weights = weights / total
        matrix[first:last, out_index] = np.where(
            weights < 0, np.trunc(-0.5 + weights * one), np.trunc(0.5 + weights * one)
        )
    return matrix


def _pillow_clip8(sums: np.ndarray) -> np.ndarray:
    """Pillow's ``clip8``: add half, shift right by the precision, clamp to 0..255."""
    half = float(1 << (_PILLOW_PRECISION_BITS - 1))
    return np.clip(np.floor((sums + half) / float(1 << _PILLOW_PRECISION_BITS)), 0.0, 255.0)


def _imagehash_thumbnails(luma: np.ndarray) -> tuple[Image.Image, Image.Image]:
    """The 32x32 and 9x8 LANCZOS thumbnails imagehash's pHash and dHash would make from ``luma``.

    imagehash resizes the whole image twice (~10 ms for 1 MP). Here both resizes share one matrix
    product per pass and give *bit-identical* pixels to ``Image.resize(..., LANCZOS)``: the
    products of 8-bit pixels and 22-bit integer weights are summed exactly in float64 (every
    partial sum is an integer below 2**53), then rounded and clamped like Pillow.

    Steps:
    1. Horizontal pass for both sizes at once: ``luma @ [K_w->32 | K_w->9]``, clip8 -> uint8.
    2. Vertical pass for each: ``K_h->32.T @ first`` and ``K_h->8.T @ second``, clip8.
    3. Wrap as L images. Handed to imagehash at their final size, its own ``resize`` is a plain
       copy, so imagehash still computes (and formats) the hashes itself.
    """
    rows, cols = luma.shape
    horizontal = np.concatenate(
        [_lanczos_fixed_point(cols, 32), _lanczos_fixed_point(cols, 9)], axis=1
    )
    first_pass = _pillow_clip8(luma.astype(np.float64) @ horizontal)
    thumb32 = _pillow_clip8(_lanczos_fixed_point(rows, 32).T @ first_pass[:, :32])
    thumb9x8 = _pillow_clip8(_lanczos_fixed_point(rows, 8).T @ first_pass[:, 32:])
    return (
        Image.fromarray(thumb32.astype(np.uint8), "L"),
        Image.fromarray(thumb9x8.astype(np.uint8), "L"),
    )


def _small_hashes(luma: Image.Image) -> tuple[str, str]:
    """(pHash, dHash) as imagehash computes them on ``luma``."""
    if min(luma.size) < 32:
        # Tiny images: imagehash directly (it is cheap here, and upsampling is its own case).
        return str(imagehash.phash(luma)), str(imagehash.dhash(luma))
    thumb32, thumb9x8 = _imagehash_thumbnails(np.asarray(luma))
    return str(imagehash.phash(thumb32)), str(imagehash.dhash(thumb9x8))


# ---------------------------------------------------------------------------------------------
# EXIF


def _exif_value_text(value: Any) -> str | None:
    """Render one EXIF value as text, or ``None`` to skip it."""
    if isinstance(value, bytes):
        stripped = value.rstrip(b"\x00")
        # UserComment and friends start with an 8-byte charset header such as b"ASCII\0\0\0".
        if stripped[:8] in (b"ASCII\x00\x00\x00", b"UNICODE\x00"):
            stripped = stripped[8:]
        try:
            text = stripped.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if text and text.isprintable():
            return text[:MAX_EXIF_VALUE_CHARS]
        if len(value) > MAX_EXIF_VALUE_CHARS // 2:
            return None  # a binary blob: hex of a prefix would be noise
        return value.hex()[:MAX_EXIF_VALUE_CHARS]
    if isinstance(value, tuple):
        parts = [_exif_value_text(item) for item in value]
        return ", ".join(p for p in parts if p is not None)[:MAX_EXIF_VALUE_CHARS]
    text = str(value).replace("\x00", "").strip()
    return text[:MAX_EXIF_VALUE_CHARS]


def _exif_items(exif: Image.Exif) -> Iterable[tuple[str, Any]]:
    """(name, value) of IFD0, the Exif sub-IFD and the GPS sub-IFD; never IFD1 (thumbnail)."""
    for tag, value in exif.items():
        if tag not in _SKIPPED_EXIF_TAGS:
            yield ExifTags.TAGS.get(tag, f"Tag0x{tag:04X}"), value
    for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items():
        if tag not in _SKIPPED_EXIF_TAGS:
            yield ExifTags.TAGS.get(tag, f"Tag0x{tag:04X}"), value
    for tag, value in exif.get_ifd(ExifTags.IFD.GPSInfo).items():
        yield ExifTags.GPSTAGS.get(tag, f"GPSTag0x{tag:04X}"), value


def _exif_text(image: Image.Image) -> dict[str, str]:
    """EXIF tag name -> text. Best effort: broken EXIF yields ``{}``, never an exception."""
    try:
        exif = image.getexif()
        if not exif:
            return {}
        result: dict[str, str] = {}
        for name, value in _exif_items(exif):
            text = _exif_value_text(value)
            if text:
                result[name] = text
        return result
    except Exception:  # noqa: BLE001 - EXIF is attacker-controlled; hashing must not fail on it
        return {}


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _is_video(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as handle:
        mime = sniff_mime(handle.read(64))
    return mime in _VIDEO_MAGIC_MIMES


def _open_image(path: str | os.PathLike[str], max_pixels: int | None) -> Image.Image:
    """Open an image (header only) and refuse it before decoding if it has too many pixels.

    Pillow's own DecompressionBombWarning/Error are turned into :class:`HashingError`; the warnings
    context keeps them from leaking into the worker's log as a side effect.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise HashingError(f"too many pixels: {exc}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise HashingError(f"not a decodable image: {exc}") from None
    if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
        image.close()
        raise HashingError(f"too many pixels ({image.width}x{image.height})")
    if max_pixels is not None and image.width * image.height > max_pixels:
        image.close()
        raise HashingError(
            f"too many pixels ({image.width}x{image.height} > {max_pixels}), not decoded"
        )
    return image


def _load(image: Image.Image) -> None:
    """Decode pixels, turning every decoder failure into :class:`HashingError`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            # Truncated files raise OSError("image file is truncated ..."); we never set
            # ImageFile.LOAD_TRUNCATED_IMAGES, so a cut upload is reported, not half-hashed.
            raise HashingError(f"image could not be decoded: {exc}") from None


def _power_of_two_scale(long_side: int, min_long_side: int, max_scale: int = 8) -> int:
    """Largest ``scale`` in 1, 2, 4 .. ``max_scale`` that keeps
    ``ceil(long_side / scale) >= min_long_side``."""
    scale = 1
    while scale < max_scale and -(-long_side // (scale * 2)) >= min_long_side:
        scale *= 2
    return scale


def _digests_only(path: str | os.PathLike[str], digests: tuple[str, str, str]) -> MediaHashes:
    sha256, md5, sha1 = digests
    return MediaHashes(sha256=sha256, md5=md5, sha1=sha1)


# ---------------------------------------------------------------------------------------------
# Pipelines


def compute_hashes(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = 50_000_000,
    digests: tuple[str, str, str] | None = None,
) -> MediaHashes:
    """All hashes of one file, decoding an image once and at the smallest scale that is safe.

    Videos (by magic bytes) get the three digests only; their perceptual fields are ``None``.
    Raises :class:`HashingError` if the file is neither a video nor a decodable image, is truncated
    or has more than ``max_pixels`` pixels (checked from the header, before any decoding).

    Steps:
    1. SHA-256, MD5 and SHA-1 of the bytes in one streaming pass (exact lists need no decode),
       unless the caller already has them (`digests`: the worker takes them while decrypting).
    2. Open the header; refuse too many pixels before decoding; read EXIF as text.
    3. JPEG: ``draft("L", (w // s, h // s))`` with the largest power-of-two ``s`` that keeps the
       long side >= 512 px: libjpeg then decodes only the luma channel (JPEG's Y is PDQ's
       0.299/0.587/0.114 luma) with DCT scaling, skipping chroma upsampling and colour
       conversion. Draft only scales when *both* requested dimensions fit, hence
       ``(w // s, h // s)`` and not ``(512, 512)``.
    4. Other formats (no DCT scaling): full decode and convert to L. Up to
       ``EXACT_MAX_PIXELS`` they are hashed at full size: pHash and dHash then equal the naive
       ones bit for bit and PDQ differs only by Pillow's integer luma rounding; larger ones are
       box-reduced (``reduce(s)``) to the size a JPEG would be decoded at.
    5. PDQ from that luma plane with the filter geometry of the *original* size
       (:func:`pdq_from_luma` with ``scale=s``), i.e. the full-size hash, approximated.
    6. pHash and dHash: the 32x32 and 9x8 LANCZOS thumbnails imagehash would make, computed from
       the same luma plane with Pillow's exact arithmetic in two small matrix products
       (:func:`_imagehash_thumbnails`), then hashed by imagehash itself.
    """
    if digests is None:
        digests = file_digests(path)
    try:
        image = _open_image(path, max_pixels)
    except HashingError:
        if _is_video(path):
            return _digests_only(path, digests)
        raise

    with image:
        width, height = image.size
        is_jpeg = image.format == "JPEG"
        if is_jpeg:
            exif = _exif_text(image)  # APP1 is parsed with the header: read before decoding
            scale = _power_of_two_scale(max(width, height), PDQ_MIN_LONG_SIDE)
            # Must precede load(): luma only, and libjpeg picks the DCT scale from the size.
            image.draft("L", (max(1, width // scale), max(1, height // scale)))
        elif width * height <= EXACT_MAX_PIXELS:
            scale = 1
        else:
            scale = _power_of_two_scale(max(width, height), PDQ_MIN_LONG_SIDE)
        _load(image)
        if not is_jpeg:
            exif = _exif_text(image)  # PNG/WebP keep EXIF in chunks that load() reads
        try:
            luma = image if image.mode == "L" else image.convert("L")
        except (ValueError, OSError) as exc:
            raise HashingError(f"image mode {image.mode} cannot be hashed: {exc}") from None

    decoded_scale = 1 if luma.size == (width, height) else scale
    if decoded_scale == 1 and scale > 1:
        # Not scaled by the decoder (lossless formats, or draft was refused): box-reduce.
        luma = luma.reduce(scale)
        decoded_scale = scale
    if (-(-width // decoded_scale), -(-height // decoded_scale)) == luma.size:
        dihedral, quality = pdq_dihedral_from_luma(np.asarray(luma), (width, height), decoded_scale)
    else:
        # Defensive: a decoder size we did not predict; hash the plane at its own geometry.
        dihedral, quality = pdq_dihedral_from_luma(np.asarray(luma))
    pdq = dihedral[0]
    phash, dhash = _small_hashes(luma)

    sha256, md5, sha1 = digests
    return MediaHashes(
        sha256=sha256,
        md5=md5,
        sha1=sha1,
        pdq=pdq,
        pdq_quality=quality,
        phash=phash,
        dhash=dhash,
        width=width,
        height=height,
        exif=exif,
        pdq_dihedral=tuple(dihedral[1:]),
    )


def compute_hashes_naive(path: str | os.PathLike[str]) -> MediaHashes:
    """Baseline pipeline: full-size RGB decode, then pdqhash + imagehash on the full image.

    Same inputs, outputs and errors as :func:`compute_hashes` (without a pixel limit beyond
    Pillow's own); several times slower. Kept as the reference the fast pipeline is measured
    against in tests and ``benchmarks/bench_hashing.py``.
    """
    import pdqhash  # only the baseline needs the C++ binding

    digests = file_digests(path)
    try:
        image = _open_image(path, None)
    except HashingError:
        if _is_video(path):
            return _digests_only(path, digests)
        raise
    with image:
        width, height = image.size
        _load(image)
        exif = _exif_text(image)
        rgb = image.convert("RGB")
    vector, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(rgb)))
    pdq = np.packbits(np.asarray(vector, dtype=bool)).tobytes().hex()
    sha256, md5, sha1 = digests
    return MediaHashes(
        sha256=sha256,
        md5=md5,
        sha1=sha1,
        pdq=pdq,
        pdq_quality=int(quality),
        phash=str(imagehash.phash(rgb)),
        dhash=str(imagehash.dhash(rgb)),
        width=width,
        height=height,
        exif=exif,
    )
