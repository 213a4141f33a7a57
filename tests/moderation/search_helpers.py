"""Builders for the search tests: items with chosen text, ids and subject, and synthetic images
with a slightly altered copy (resized, brighter, recompressed) for near-PDQ search."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ImageEnhance

from core.audit import SystemActor
from moderation.media.hashing import compute_hashes
from moderation.media.synthetic import encode, synthetic_image
from moderation.models import Case, Item
from moderation.services.hashing import media_hash
from moderation.services.intake import ItemInput, item_submit

_counter = itertools.count(1)

# A seed whose image has a PDQ quality of 100 (well above the floor of 50).
IMAGE_SEED = 11
UNRELATED_SEED = 1011


def original_jpeg(seed: int = IMAGE_SEED) -> bytes:
    return encode(synthetic_image(seed, 320, 240), "JPEG", quality=85)


def altered_jpeg(seed: int = IMAGE_SEED) -> bytes:
    """The same picture, smaller, 8% brighter and recompressed harder: another file (other
    digests) whose PDQ is a few bits away."""
    image = synthetic_image(seed, 320, 240).resize((288, 216))
    return encode(ImageEnhance.Brightness(image).enhance(1.08), "JPEG", quality=60)


def hashes_of(data: bytes) -> Any:
    """The worker's hashes of some bytes (SHA-256, MD5, SHA-1, PDQ, pHash, dHash)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.jpg"
        path.write_bytes(data)
        return compute_hashes(path)


def submit(*, image: bytes | None = None, **fields: Any) -> Item:
    """One item in its own case (a fresh subject unless given), hashed if it has an image."""
    n = next(_counter)
    data = ItemInput(
        **{
            "source": "acme",
            "external_id": f"search-{n}",
            "kind": "image" if image is not None else "text",
            "subject_account_id": f"search-subject-{n}",
            "text": "" if image is not None else "an ordinary synthetic message",
            **fields,
        }
    )
    upload = SimpleUploadedFile(f"{n}.jpg", image) if image is not None else None
    item, _ = item_submit(data=data, upload=upload, actor=SystemActor("test"))
    media = getattr(item, "media", None)
    if media is not None and media.hash_status == "pending":
        media_hash(media_id=media.pk)
    item.refresh_from_db()
    return item


def submit_case(**fields: Any) -> Case:
    case = submit(**fields).case
    assert case is not None
    return case
