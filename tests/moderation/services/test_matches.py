"""Recording matches (moderation.services.matches): new uploads match existing lists exactly
and perceptually, new lists match stored media retroactively, disabled lists never match."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.models import AuditEvent
from moderation.matching.banks import bank_load
from moderation.media.hashing import compute_hashes, hamming_hex
from moderation.media.synthetic import encode, synthetic_image, synthetic_jpeg
from moderation.models import Case, Flag, HashList, Match, Media
from moderation.services.hashing import media_hash
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.services.intake import ItemInput, item_submit
from tests.moderation.factories import random_pdq

ACTOR = SystemActor("test")


def _flip(hex_value: str, bits: int) -> str:
    value = int(hex_value, 16)
    for bit in range(bits):
        value ^= 1 << (bit * 7 % (len(hex_value) * 4))
    return f"{value:0{len(hex_value)}x}"


def _stored_image(client: APIClient, seed: int, callbacks: Any) -> Media:
    with callbacks(execute=True):
        response = client.post(
            "/api/v1/items",
            {
                "source": "acme",
                "external_id": f"img-{seed}",
                "kind": "image",
                "subject_account_id": f"u{seed}",
                "media": SimpleUploadedFile(
                    "a.jpg", synthetic_jpeg(seed, 400, 300), content_type="image/jpeg"
                ),
            },
            format="multipart",
        )
    assert response.status_code == 201
    return Media.objects.get(item_id=response.json()["id"])


@pytest.mark.django_db
class MatchingTests:
    def test_a_near_duplicate_pdq_within_the_threshold_matches_and_flags_the_item(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        probe = _stored_image(platform_client, 10, django_capture_on_commit_callbacks)
        near = _flip(probe.pdq, 12)
        assert hamming_hex(near, probe.pdq) == 12
        hl, _ = hash_list_upsert(
            name="P", algorithm="pdq", threshold=20, actor=ACTOR, verified=True
        )
        rng = random.Random(4)
        content = "".join(f"{random_pdq(rng)},C,\n" for _ in range(100)) + f"{near},A,\n"
        with django_capture_on_commit_callbacks(execute=True):
            imp = hash_import_create(
                hash_list=hl, content=content.encode(), filename="p.csv", actor=ACTOR
            )
            hash_import_run(import_id=imp.pk)
        match = Match.objects.get(media=probe)  # retroactive: found by the rescan
        assert match.distance == 12 and match.known_hash.category == "A"
        assert match.list_version == HashList.objects.get(pk=hl.pk).version
        flag = Flag.objects.get(match=match)
        assert flag.source == "hash_match" and flag.category.code == "known_csam"
        case = Case.objects.get(pk=probe.item.case_id)
        assert case.category.code == "known_csam" and case.priority == 3
        assert AuditEvent.objects.filter(verb="match.recorded").count() == 1

    def test_new_uploads_match_existing_lists_exactly_and_perceptually(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any, tmp_path: Path
    ) -> None:
        data = synthetic_jpeg(11, 400, 300)
        path = tmp_path / "x.jpg"
        path.write_bytes(data)
        hashes = compute_hashes(path)
        for name, alg, value in (
            ("S", "sha256", hashes.sha256),
            ("M", "md5", hashes.md5),
            ("Q", "pdq", _flip(hashes.pdq, 31)),
            ("F", "pdq", _flip(hashes.pdq, 30)),
        ):
            hl, _ = hash_list_upsert(
                name=name, algorithm=alg, threshold=30 if name == "F" else None, actor=ACTOR
            )
            imp = hash_import_create(
                hash_list=hl, content=f"{value},A,\n".encode(), filename="x.csv", actor=ACTOR
            )
            hash_import_run(import_id=imp.pk)
        HashList.objects.filter(name="Q").update(threshold=31)
        media = _stored_image(platform_client, 11, django_capture_on_commit_callbacks)
        got = {m.hash_list.name: m.distance for m in Match.objects.filter(media=media)}
        assert got == {"S": 0, "M": 0, "Q": 31, "F": 30}

    def test_disabled_lists_are_not_matched(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any, tmp_path: Path
    ) -> None:
        data = synthetic_jpeg(12, 400, 300)
        hl, _ = hash_list_upsert(name="S", algorithm="sha256", actor=ACTOR, enabled=False)
        imp = hash_import_create(
            hash_list=hl,
            content=f"{hashlib.sha256(data).hexdigest()},A\n".encode(),
            filename="x.csv",
            actor=ACTOR,
        )
        hash_import_run(import_id=imp.pk)
        media = _stored_image(platform_client, 12, django_capture_on_commit_callbacks)
        assert not Match.objects.filter(media=media).exists()


def _submit_image(data: bytes, name: str = "x.png") -> Media:
    """Store an image item and hash it in-process, as the worker would."""
    external_id = hashlib.sha256(data).hexdigest()[:16]
    item, _ = item_submit(
        data=ItemInput(
            source="acme", external_id=external_id, kind="image", subject_account_id=external_id
        ),
        upload=SimpleUploadedFile(name, data),
        actor=SystemActor("test"),
    )
    media_hash(media_id=item.media.pk)
    return Media.objects.get(pk=item.media.pk)


def _pdq_list_with(*values: str, **settings: Any) -> HashList:
    hash_list, _ = hash_list_upsert(
        name="P", algorithm="pdq", actor=SystemActor("test"), **settings
    )
    content = "".join(f"{v},A,\n" for v in values).encode()
    imp = hash_import_create(
        hash_list=hash_list, content=content, filename="p.csv", actor=SystemActor("test")
    )
    hash_import_run(import_id=imp.pk)
    hash_list.refresh_from_db()
    return hash_list


@pytest.mark.django_db
class DihedralMatchingTests:
    def test_every_rotation_and_mirror_of_a_listed_image_matches_and_says_which(
        self, tmp_path: Path
    ) -> None:
        image = synthetic_image(12, 400, 300)
        original = tmp_path / "o.png"
        original.write_bytes(encode(image, "PNG"))
        _pdq_list_with(compute_hashes(original).pdq)
        for name, transform in {
            "rotate90": Image.Transpose.ROTATE_90,
            "rotate180": Image.Transpose.ROTATE_180,
            "rotate270": Image.Transpose.ROTATE_270,
            "flip_vertical": Image.Transpose.FLIP_TOP_BOTTOM,
            "flip_horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
            "transpose": Image.Transpose.TRANSPOSE,
            "transverse": Image.Transpose.TRANSVERSE,
        }.items():
            media = _submit_image(encode(image.transpose(transform), "PNG"), f"{name}.png")
            match = Match.objects.get(media=media)
            assert match.transform == name, name
            assert f"as a {name.replace('_', ' ')} copy" in Flag.objects.get(match=match).note

    def test_a_list_can_switch_rotations_and_mirrors_off(self, tmp_path: Path) -> None:
        image = synthetic_image(13, 400, 300)
        original = tmp_path / "o.png"
        original.write_bytes(encode(image, "PNG"))
        _pdq_list_with(compute_hashes(original).pdq, match_dihedral=False)
        media = _submit_image(encode(image.transpose(Image.Transpose.ROTATE_90), "PNG"))
        assert not Match.objects.filter(media=media).exists()


@pytest.mark.django_db
class QualityGateTests:
    def test_a_flat_image_is_not_matched_perceptually_but_still_exactly(self) -> None:
        flat = encode(Image.new("RGB", (300, 200), (120, 120, 120)), "PNG")
        pdq_list = _pdq_list_with("0" * 64, match_low_quality=True)  # what a flat image hashes to
        exact, _ = hash_list_upsert(name="S", algorithm="sha256", actor=SystemActor("test"))
        imp = hash_import_create(
            hash_list=exact,
            filename="s.csv",
            actor=SystemActor("test"),
            content=f"{hashlib.sha256(flat).hexdigest()},A,\n".encode(),
        )
        hash_import_run(import_id=imp.pk)
        media = _submit_image(flat)
        assert media.pdq_quality is not None and media.low_quality_pdq
        assert list(Match.objects.filter(media=media).values_list("hash_list", flat=True)) == [
            exact.pk
        ]
        assert pdq_list.pk != exact.pk

    def test_a_degenerate_list_hash_is_flagged_at_import_and_left_out_unless_opted_in(
        self,
    ) -> None:
        degenerate, normal = "0" * 64, random_pdq(random.Random(5))
        hash_list = _pdq_list_with(degenerate, normal)
        flags = dict(hash_list.hashes.values_list("value", "low_quality"))
        assert flags == {degenerate: True, normal: False}
        assert bank_load(hash_list).index.size == 1
        hash_list, _ = hash_list_upsert(
            name="P", algorithm="pdq", actor=SystemActor("test"), match_low_quality=True
        )
        assert bank_load(hash_list).index.size == 2
