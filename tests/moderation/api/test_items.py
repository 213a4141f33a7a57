"""The platform intake API for items: stored with a custody hash, hashed after commit,
idempotent; bad input and hostile files get a clear 4xx and leave nothing behind; each
platform sees only its own items."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from core.models import AuditEvent
from moderation.media.synthetic import synthetic_jpeg, synthetic_png
from moderation.models import Case, Flag, Item, Media
from tests.conftest import client_for
from tests.moderation.factories import submit_item
from tests.moderation.media.files import png_header_only


def _jpeg(seed: int = 1, size: tuple[int, int] = (320, 240)) -> bytes:
    return synthetic_jpeg(seed, *size, quality=85)


@pytest.mark.django_db
class ItemCreateApiTests:
    def test_it_stores_an_image_item_with_its_custody_hash_and_opens_a_case(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        data = _jpeg()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = submit_item(platform_client, media=data)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["created"] is True and body["status_url"] == f"/api/v1/items/{body['id']}"
        item = Item.objects.get(pk=body["id"])
        media = item.media
        assert media.sha256 == hashlib.sha256(data).hexdigest()
        assert Path(media.file.path).read_bytes() == data  # custody hash = stored bytes' hash
        assert media.mime == "image/jpeg" and media.hash_status == "pending"
        assert item.case is not None and item.case.status == "open"
        assert item.case.category.code == "new_csam" and item.case.priority == 2
        assert len(callbacks) == 2  # hashing and the rules run only after commit
        verbs = set(AuditEvent.objects.values_list("verb", flat=True))
        assert {"item.received", "media.stored", "case.opened"} <= verbs

    def test_the_worker_hashes_it_and_the_status_endpoint_reports_hashes(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            body = submit_item(platform_client, media=_jpeg(2)).json()
        detail = platform_client.get(f"/api/v1/items/{body['id']}").json()
        assert detail["status"] == "ready"
        assert detail["media"]["hash_status"] == "done"
        assert len(detail["media"]["pdq"]) == 64 and len(detail["media"]["phash"]) == 16
        assert detail["case_id"] == body["case_id"]
        assert "file" not in detail["media"] and "url" not in detail["media"]

    def test_a_resubmission_returns_200_with_the_same_id_and_stores_nothing_twice(
        self, platform_client: APIClient
    ) -> None:
        first = submit_item(platform_client, media=_jpeg())
        counts = (
            Item.objects.count(),
            Media.objects.count(),
            Flag.objects.count(),
            Case.objects.count(),
        )
        second = submit_item(platform_client, media=_jpeg())
        assert second.status_code == 200
        assert second.json()["id"] == first.json()["id"] and second.json()["created"] is False
        assert (
            Item.objects.count(),
            Media.objects.count(),
            Flag.objects.count(),
            Case.objects.count(),
        ) == counts
        staging = Path(settings.EVIDENCE_ROOT) / "staging"
        assert not any(staging.iterdir())

    def test_items_of_one_subject_share_an_open_case_that_takes_the_most_severe_priority(
        self, platform_client: APIClient
    ) -> None:
        a = submit_item(platform_client, external_id="a", category_hint="search_abuse").json()
        b = submit_item(platform_client, external_id="b", category_hint="grooming").json()
        assert a["case_id"] == b["case_id"]
        case = Case.objects.get(pk=a["case_id"])
        assert case.priority == 1 and case.category.code == "grooming"
        assert len(case.priority_reasons) == 2

    def test_json_items_of_every_text_kind_are_accepted(self, platform_client: APIClient) -> None:
        for i, (kind, extra) in enumerate(
            [
                ("text", {"text": "t"}),
                ("message", {"text": "m"}),
                ("url", {"url": "https://example.invalid/x"}),
                ("account", {}),
                ("livestream", {}),
            ]
        ):
            response = platform_client.post(
                "/api/v1/items",
                {"source": "acme", "external_id": f"k{i}", "kind": kind, **extra},
                format="json",
            )
            assert response.status_code == 201, (kind, response.content)

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"external_id": "x", "kind": "text", "text": "t"}, "source"),
            ({"source": "acme", "kind": "text", "text": "t"}, "external_id"),
            ({"source": "acme", "external_id": "x", "kind": "hologram"}, "kind"),
            ({"source": "acme", "external_id": "x", "kind": "text"}, "text"),
            ({"source": "acme", "external_id": "x", "kind": "image"}, "media"),
            ({"source": "acme", "external_id": "x", "kind": "url", "url": "not a url"}, "url"),
            (
                {
                    "source": "acme",
                    "external_id": "x",
                    "kind": "text",
                    "text": "t",
                    "category_hint": "nonsense",
                },
                "category_hint",
            ),
            (
                {
                    "source": "acme",
                    "external_id": "x",
                    "kind": "text",
                    "text": "t",
                    "subject_ip": "999.1.1.1",
                },
                "subject_ip",
            ),
            ({"source": "bad source!", "external_id": "x", "kind": "text", "text": "t"}, "source"),
        ],
    )
    def test_invalid_payloads_get_400_naming_the_field_and_store_nothing(
        self, platform_client: APIClient, payload: dict[str, Any], field: str
    ) -> None:
        response = platform_client.post("/api/v1/items", payload, format="json")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid" and field in error["fields"]
        assert not Item.objects.exists()

    def test_malformed_json_gets_a_clear_400(self, platform_client: APIClient) -> None:
        response = platform_client.post(
            "/api/v1/items", "{not json", content_type="application/json"
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.django_db
class HostileMediaTests:
    """Hostile or broken files: a clear 4xx, and nothing half-written (no rows, no files)."""

    def _assert_nothing_stored(self) -> None:
        assert not Item.objects.exists() and not Media.objects.exists()
        assert not Case.objects.exists() and not Flag.objects.exists()
        root = Path(settings.EVIDENCE_ROOT)
        assert not [p for p in root.rglob("*") if p.is_file()]

    def _refused(
        self,
        client: APIClient,
        data: bytes,
        code: str,
        *,
        status: int = 400,
        name: str = "photo.jpg",
        content_type: str = "image/jpeg",
    ) -> None:
        response = submit_item(client, media=data, name=name, content_type=content_type)
        assert response.status_code == status, response.content
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["message"]
        self._assert_nothing_stored()

    def test_it_refuses_a_decompression_bomb(self, platform_client: APIClient) -> None:
        self._refused(
            platform_client,
            png_header_only(100_000, 100_000, colour_type=2),
            "decompression_bomb",
            name="small.png",
            content_type="image/png",
        )

    def test_it_refuses_a_truncated_jpeg(self, platform_client: APIClient) -> None:
        data = _jpeg(3, (640, 480))
        self._refused(platform_client, data[: len(data) // 2], "truncated")

    def test_it_refuses_a_truncated_png(self, platform_client: APIClient) -> None:
        data = synthetic_png(4, 200, 150)
        self._refused(
            platform_client,
            data[: len(data) // 2],
            "truncated",
            name="x.png",
            content_type="image/png",
        )

    def test_it_refuses_content_that_is_not_an_allowed_type_whatever_its_name(
        self, platform_client: APIClient
    ) -> None:
        self._refused(platform_client, b"#!/bin/sh\necho hello\n" * 10, "unsupported_type")
        self._refused(
            platform_client,
            b"%PDF-1.4\n" + b"x" * 100,
            "unsupported_type",
            name="scan.png",
            content_type="image/png",
        )

    def test_a_png_named_jpg_is_stored_as_what_it_is(self, platform_client: APIClient) -> None:
        response = submit_item(
            platform_client,
            media=synthetic_png(5, 64, 48),
            name="lies.jpg",
            content_type="image/jpeg",
        )
        assert response.status_code == 201
        media = Media.objects.get()
        assert media.mime == "image/png" and media.declared_type == "image/jpeg"

    def test_it_refuses_a_zero_byte_file(self, platform_client: APIClient) -> None:
        self._refused(platform_client, b"", "empty_file")

    def test_it_refuses_an_oversized_upload_with_413(
        self, platform_client: APIClient, settings: Any
    ) -> None:
        settings.SAFEGUARD_MAX_UPLOAD_BYTES = 10_000
        self._refused(
            platform_client, _jpeg(6, (640, 480)) + b"\0" * 10_000, "too_large", status=413
        )

    def test_garbage_behind_a_png_signature_is_refused_as_corrupt(
        self, platform_client: APIClient
    ) -> None:
        response = submit_item(
            platform_client,
            media=b"\x89PNG\r\n\x1a\n" + b"\x13" * 300,
            name="x.png",
            content_type="image/png",
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] in {"corrupt", "truncated"}
        self._assert_nothing_stored()

    def test_a_file_that_fails_in_hashing_is_kept_and_reviewable(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            body = submit_item(platform_client, media=_jpeg(7)).json()
        media = Media.objects.get()
        # The stored bytes change after intake: the custody check in the worker catches it.
        Path(media.file.path).write_bytes(b"tampered")
        for callback in callbacks:
            callback()
        media.refresh_from_db()
        assert media.hash_status == "failed" and "chain of custody" in media.hash_error
        item = Item.objects.get(pk=body["id"])
        assert item.status == "failed" and item.case.status == "open"
        assert AuditEvent.objects.filter(verb="media.hash_failed").exists()


@pytest.mark.django_db
class ItemAccessTests:
    def test_a_platform_sees_only_its_own_submissions(
        self, platform_client: APIClient, other_platform_client: APIClient
    ) -> None:
        body = submit_item(platform_client).json()
        assert platform_client.get(f"/api/v1/items/{body['id']}").status_code == 200
        assert other_platform_client.get(f"/api/v1/items/{body['id']}").status_code == 404

    def test_console_users_see_items_of_cases_they_may_open(
        self, platform_client: APIClient, moderator: Any, outsider: Any
    ) -> None:
        body = submit_item(platform_client).json()
        assert client_for(moderator).get(f"/api/v1/items/{body['id']}").status_code == 200
        assert client_for(outsider).get(f"/api/v1/items/{body['id']}").status_code == 403
        Case.objects.filter(pk=body["case_id"]).update(restricted=True)
        assert client_for(moderator).get(f"/api/v1/items/{body['id']}").status_code == 404

    def test_anonymous_and_outsiders_cannot_submit(self, outsider: Any, moderator: Any) -> None:
        assert APIClient().post("/api/v1/items", {}, format="json").status_code == 401
        assert client_for(outsider).post("/api/v1/items", {}, format="json").status_code == 403
        assert client_for(moderator).post("/api/v1/items", {}, format="json").status_code == 403
