"""Image formats beyond Pillow's built-ins: HEIC/HEIF (phone photos) through pillow-heif.

Pillow decodes AVIF itself (13.x, libavif in its wheel). pillow-heif registers a Pillow opener for
HEIF, so a HEIC photo opens, is validated and is hashed exactly like a JPEG or PNG — decoded once.
Registration is idempotent and cheap; the modules that open images call :func:`register`.
"""

from __future__ import annotations

from functools import cache


@cache
def register() -> None:
    import pillow_heif  # a C extension: imported only where images are opened

    # Thumbnails stored inside the file are never used: hashes come from the primary image.
    pillow_heif.register_heif_opener(thumbnails=False)
