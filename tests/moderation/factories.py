"""Small builders for cases with items and media (synthetic images only), and the few helpers
several moderation test modules share: queued and claimed cases, rules, hash values, and the
API and console requests that make items and reveals."""

from __future__ import annotations

import hashlib
import itertools
import random
from datetime import timedelta
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import SystemActor
from moderation.media.synthetic import synthetic_jpeg
from moderation.models import Case, Escalation, EscalationRule, Item, Media
from moderation.rules.services import rule_save
from moderation.services.escalations import escalation_acknowledge, escalation_record_call
from moderation.services.hashing import media_hash
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.services.intake import ItemInput, item_submit
from moderation.services.queue import case_claim_next
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


# A reported user's details as a platform sends them (all synthetic: documentation IP range,
# example.org, an Ofcom drama number).
SUBJECT_DETAILS: dict[str, Any] = {
    "subject_account_id": "user-42",
    "subject_username": "sam_example",
    "subject_display_name": "Sam Example",
    "subject_email": "sam@example.org",
    "subject_phone": "+44 7700 900123",
    "subject_ip": "2001:db8::7",
    "subject_port": 51234,
    "subject_country": "GB",
    "subject_linked_accounts": ["user-43", "sam_alt"],
}


def make_reported_user_case(**details: Any) -> Case:
    """An open message case whose item carries the reported user's details."""
    n = next(_counter)
    now = timezone.now()
    data = ItemInput(
        source="acme",
        external_id=f"subj-{n}",
        kind="message",
        text="synthetic text",
        subject_ip_seen_at=now - timedelta(hours=1),
        subject_account_created_at=now - timedelta(days=30),
        **{**SUBJECT_DETAILS, **details},
    )
    item, _ = item_submit(data=data, upload=None, actor=SystemActor("test"))
    assert item.case is not None
    return item.case


def make_case(**kwargs: Any) -> Case:
    item = make_item(**kwargs)
    assert item.case is not None
    return item.case


def record_999_call(
    escalation: Escalation,
    lead: Any,
    police_force: str = "Kent Police",
    incident_reference: str = "CAD-1234",
) -> Escalation:
    """`lead` acknowledges the immediate-risk escalation (unless done) and records the 999 call."""
    if escalation.acknowledged_at is None:
        escalation_acknowledge(escalation=escalation, lead=lead)
    return escalation_record_call(
        escalation=escalation,
        lead=lead,
        called_at=timezone.now(),
        police_force=police_force,
        incident_reference=incident_reference,
    )


def make_known_material_cases(*seeds: int, provider_category: str = "A") -> list[Case]:
    """Image cases whose media a verified sha256 list ("V") lists, hashed and matched."""
    digests = [hashlib.sha256(synthetic_jpeg(s, 160, 120, quality=80)).hexdigest() for s in seeds]
    hash_list, _ = hash_list_upsert(
        name="V", algorithm="sha256", verified=True, actor=SystemActor("t")
    )
    content = "".join(f"{d},{provider_category}\n" for d in digests).encode()
    imp = hash_import_create(
        hash_list=hash_list, filename="v.csv", actor=SystemActor("t"), content=content
    )
    hash_import_run(import_id=imp.pk)
    cases = [make_case(kind="image", seed=s) for s in seeds]
    for media in Media.objects.filter(item__case__in=cases):
        media_hash(media_id=media.pk)
    return cases


def make_open_case(priority: int, due_in: timedelta, **kwargs: Any) -> Case:
    """An open text case with exactly this priority and SLA (and no category)."""
    case = make_case(kind="text", **kwargs)
    Case.objects.filter(pk=case.pk).update(
        priority=priority, sla_due_at=timezone.now() + due_in, category=None
    )
    return Case.objects.get(pk=case.pk)


def make_claimed_image_case(user: Any, **kwargs: Any) -> tuple[Case, Media]:
    """An image case claimed by `user` (the only case in the queue), and its media."""
    case = make_case(kind="image", **kwargs)
    claimed = case_claim_next(user=user)
    assert claimed is not None and claimed.pk == case.pk
    return claimed, Media.objects.get(item__case=case)


def make_rule(
    admin: Any, name: str, conditions: list[Any], actions: list[Any], **kw: Any
) -> EscalationRule:
    return rule_save(actor=admin, name=name, conditions=conditions, actions=actions, **kw)


def random_pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def submit_item(
    client: APIClient,
    *,
    external_id: str = "post-1",
    media: bytes | None = None,
    name: str = "photo.jpg",
    content_type: str = "image/jpeg",
    **fields: Any,
) -> Any:
    """POST an item to the intake API as platform `client` (image with `media`, else text)."""
    data: dict[str, Any] = {
        "source": "acme",
        "external_id": external_id,
        "kind": "image" if media is not None else "text",
        "subject_account_id": "user-42",
        "visibility": "public",
        "uk_linked": "true",
        **fields,
    }
    if media is not None:
        data["media"] = SimpleUploadedFile(name, media, content_type=content_type)
        return client.post("/api/v1/items", data, format="multipart")
    data.setdefault("text", "a synthetic flagged message")
    return client.post("/api/v1/items", data, format="json")


def reveal_in_console(
    client: Client, case: Case, media: Media, reason: str = "need to assess"
) -> Any:
    return client.post(f"/cases/{case.pk}/media/{media.pk}/reveal", {"reason": reason})


def make_video_item(
    path: Any, *, subject: str | None = None, source: str = "acme", kind: str = "video"
) -> Item:
    """Submit a generated video (or animated image, kind="image") file as an item and hash it
    in-process, as the worker would."""
    n = next(_counter)
    data = ItemInput(
        source=source, external_id=f"vid-{n}", kind=kind, subject_account_id=subject or f"v-{n}"
    )
    upload = SimpleUploadedFile(path.name, path.read_bytes())
    item, _ = item_submit(data=data, upload=upload, actor=SystemActor("test"))
    if item.media.hash_status == "pending":
        media_hash(media_id=item.media.pk)
    item.refresh_from_db()
    return item
