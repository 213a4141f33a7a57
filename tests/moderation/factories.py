"""Small builders for cases with items and media (synthetic images only)."""

from __future__ import annotations

import itertools
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from core.audit import SystemActor
from moderation.media.synthetic import synthetic_jpeg
from moderation.models import Case, Item
from moderation.pipeline import media_hash
from moderation.services import ItemInput, item_submit
from principles.models import HarmCategory

_counter = itertools.count(1)


def make_item(
    *,
    kind: str = "image",
    category: str | None = None,
    subject: str | None = None,
    seed: int | None = None,
    source: str = "acme",
) -> Item:
    n = next(_counter)
    upload = None
    if kind == "image":
        upload = SimpleUploadedFile(
            f"{n}.jpg", synthetic_jpeg(seed if seed is not None else n, 160, 120, quality=80)
        )
    data = ItemInput(
        source=source,
        external_id=f"ext-{n}",
        kind=kind,
        category_hint=HarmCategory.objects.get(code=category) if category else None,
        subject_account_id=subject or f"subject-{n}",
        text="synthetic text" if kind in ("text", "message") else "",
    )
    item, _ = item_submit(data=data, upload=upload, actor=SystemActor("test"))
    media = getattr(item, "media", None)
    if media is not None and media.hash_status == "pending":
        # Tests that don't run on-commit callbacks still get hashed media, as the worker would.
        media_hash(media_id=media.pk)
        item.refresh_from_db()
    return item


def make_case(**kwargs: Any) -> Case:
    item = make_item(**kwargs)
    assert item.case is not None
    return item.case
