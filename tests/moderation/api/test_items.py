"""The platform intake API for items: stored with a custody hash, hashed after commit,
idempotent; bad input and hostile files get a clear 4xx and leave nothing behind; each
platform sees only its own items."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.evidence_crypto import evidence_read_bytes
from core.models import AuditEvent
from core.tokens import api_token_create
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
        assert evidence_read_bytes(media.file.path) == data  # custody hash = stored bytes' hash
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

    def test_a_refused_payload_leaves_nothing_behind_for_the_next_request_on_the_thread(
        self, platform_client: APIClient
    ) -> None:
        """The input serializer is reused per thread: a refusal must not colour the next."""
        bad = {"source": "acme", "external_id": "r-1", "kind": "text"}  # text missing
        good = {"source": "acme", "external_id": "r-2", "kind": "text", "text": "hello"}
        first = platform_client.post("/api/v1/items", bad, format="json")
        assert first.status_code == 400 and "text" in first.json()["error"]["fields"]
        second = platform_client.post("/api/v1/items", good, format="json")
        assert second.status_code == 201, second.content
        again = platform_client.post("/api/v1/items", bad, format="json")
        assert again.json() == first.json()
        assert list(Item.objects.values_list("external_id", flat=True)) == ["r-2"]

    def test_malformed_json_gets_a_clear_400(self, platform_client: APIClient) -> None:
        response = platform_client.post(
            "/api/v1/items", "{not json", content_type="application/json"
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.django_db
class HostileMediaTests:
    """Hostile or broken files: a clear 4xx, and nothing half-written (no rows, no files)."""

    def test_two_media_parts_are_refused_not_silently_halved(
        self, platform_client: APIClient
    ) -> None:
        from django.core.files.uploadedfile import SimpleUploadedFile

        def jpeg(name: str, seed: int) -> SimpleUploadedFile:
            return SimpleUploadedFile(name, _jpeg(seed), "image/jpeg")

        for n, files in enumerate(
            (
                {"media": [jpeg("a.jpg", 1), jpeg("b.jpg", 2)]},  # the same field twice
                {"media": jpeg("a.jpg", 1), "photo": jpeg("b.jpg", 2)},  # another field
            )
        ):
            response = platform_client.post(
                "/api/v1/items",
                {"source": "acme", "external_id": f"two-{n}", "kind": "image", **files},
                format="multipart",
            )
            assert response.status_code == 400, response.content
            assert "exactly one file" in response.json()["error"]["fields"]["media"]
        self._assert_nothing_stored()

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


@pytest.mark.django_db
class ItemIntakeScopeTests:
    """Idempotency is per platform account: the same source + external_id from two platforms
    are two items, and resubmitting another platform's id reveals nothing about it."""

    def test_two_platforms_with_the_same_external_id_get_two_items(
        self, platform_client: APIClient, other_platform_client: APIClient
    ) -> None:
        mine = submit_item(platform_client, external_id="123")
        theirs = submit_item(other_platform_client, external_id="123")
        assert mine.status_code == 201 and theirs.status_code == 201
        assert mine.json()["id"] != theirs.json()["id"]
        assert theirs.json()["created"] is True  # nothing learned about the first platform's id
        again = submit_item(other_platform_client, external_id="123")
        assert again.status_code == 200 and again.json()["id"] == theirs.json()["id"]
        assert Item.objects.filter(source="acme", external_id="123").count() == 2

    def test_a_rotated_key_keeps_its_platforms_namespace(self, platform_client: APIClient) -> None:
        first = submit_item(platform_client, external_id="rot").json()
        account = Item.objects.get(pk=first["id"]).platform_account
        assert account is not None
        _, key = api_token_create(
            name="test-platform-2", actor=SystemActor("test"), platform_account=account
        )
        rotated = APIClient()
        rotated.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        again = submit_item(rotated, external_id="rot")
        assert again.status_code == 200 and again.json()["id"] == first["id"]

    def test_in_house_submissions_share_one_namespace(self, admin_user: Any) -> None:
        first = submit_item(client_for(admin_user), external_id="inhouse")
        again = submit_item(client_for(admin_user), external_id="inhouse")
        assert first.status_code == 201 and again.status_code == 200
        assert Item.objects.get(pk=first.json()["id"]).platform_account is None


SUBJECT: dict[str, Any] = {
    "account_id": "user-42",
    "username": "sam_example",
    "display_name": "Sam Example",
    "email": "sam@example.org",
    "phone": "+44 7700 900123",
    "ip_address": "2001:db8::7",
    "port": 51234,
    "ip_seen_at": "2026-01-02T03:04:05Z",
    "country": "GB",
    "account_created_at": "2025-06-01T00:00:00Z",
    "linked_accounts": ["user-43", "sam_alt"],
}
# The reported user's personal data: none of it may reach the audit log or the logs.
PERSONAL = ("Sam Example", "sam@example.org", "7700 900123", "2001:db8::7", "sam_alt")


def _in(**offset: float) -> str:
    return (timezone.now() + timedelta(**offset)).isoformat()


def _assert_subject_stored(item: Item) -> None:
    assert item.subject_account_id == "user-42" and item.subject_username == "sam_example"
    assert item.subject_display_name == "Sam Example"
    assert item.subject_email == "sam@example.org"
    assert item.subject_phone == "+44 7700 900123"
    assert item.subject_ip == "2001:db8::7" and item.subject_port == 51234
    assert item.subject_ip_seen_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert item.subject_country == "GB"
    assert item.subject_account_created_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert item.subject_linked_accounts == ["user-43", "sam_alt"]


@pytest.mark.django_db
class ItemSubjectApiTests:
    """The reported user under `subject`: validated, stored, and kept out of audit and logs."""

    def test_a_json_item_stores_every_subject_detail(self, platform_client: APIClient) -> None:
        response = submit_item(platform_client, subject=SUBJECT)
        assert response.status_code == 201, response.content
        _assert_subject_stored(Item.objects.get(pk=response.json()["id"]))

    def test_a_multipart_item_takes_subject_as_a_json_string(
        self, platform_client: APIClient
    ) -> None:
        response = submit_item(platform_client, media=_jpeg(), subject=json.dumps(SUBJECT))
        assert response.status_code == 201, response.content
        _assert_subject_stored(Item.objects.get(pk=response.json()["id"]))

    @pytest.mark.parametrize("value", ["not json", "[1, 2]", '"a string"', "[" * 5000])
    def test_a_multipart_subject_that_is_not_a_json_object_gets_400(
        self, platform_client: APIClient, value: str
    ) -> None:
        response = submit_item(platform_client, media=_jpeg(), subject=value)
        assert response.status_code == 400, response.content
        assert response.json()["error"]["fields"] == {"subject": ["Must be a JSON object."]}
        assert not Item.objects.exists() and not Media.objects.exists()

    def test_a_json_subject_that_is_not_an_object_gets_400(
        self, platform_client: APIClient
    ) -> None:
        response = submit_item(platform_client, subject="sam@example.org")
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"subject": ["Must be a JSON object."]}
        assert not Item.objects.exists()

    def test_every_subject_field_is_optional(self, platform_client: APIClient) -> None:
        response = submit_item(platform_client, subject={})
        assert response.status_code == 201, response.content
        item = Item.objects.get()
        assert item.subject_account_id == "user-42"  # the flat field
        assert item.subject_email == "" and item.subject_linked_accounts == []
        assert item.subject_ip is None and item.subject_ip_seen_at is None

    def test_the_flat_fields_still_work(self, platform_client: APIClient) -> None:
        response = submit_item(
            platform_client,
            subject_username="sam_example",
            subject_ip="192.0.2.7",
            subject_port=443,
            subject_country="GB",
        )
        assert response.status_code == 201, response.content
        item = Item.objects.get()
        assert (item.subject_username, item.subject_ip, item.subject_port) == (
            "sam_example",
            "192.0.2.7",
            443,
        )
        assert item.subject_country == "GB"

    def test_flat_and_nested_fields_that_agree_are_accepted(
        self, platform_client: APIClient
    ) -> None:
        response = submit_item(
            platform_client, subject_ip="2001:db8::7", subject_country="GB", subject=SUBJECT
        )
        assert response.status_code == 201, response.content
        _assert_subject_stored(Item.objects.get())

    @pytest.mark.parametrize(
        ("flat", "value", "nested"),
        [
            ("subject_account_id", "user-99", "account_id"),
            ("subject_username", "someone_else", "username"),
            ("subject_ip", "192.0.2.1", "ip_address"),
            ("subject_port", 80, "port"),
            ("subject_country", "FR", "country"),
        ],
    )
    def test_flat_and_nested_fields_that_differ_get_400_naming_the_field(
        self, platform_client: APIClient, flat: str, value: Any, nested: str
    ) -> None:
        response = submit_item(platform_client, subject=SUBJECT, **{flat: value})
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "invalid" and list(error["fields"]["subject"]) == [nested]
        assert flat in error["fields"]["subject"][nested][0]
        assert not Item.objects.exists()

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("account_id", "x" * 256),
            ("username", "x" * 256),
            ("display_name", "x" * 256),
            ("email", "not-an-email"),
            ("phone", "call me maybe"),
            ("phone", "+44"),
            ("phone", "1" * 31),
            ("ip_address", "999.1.1.1"),
            ("ip_address", "2001:db8::zz"),
            ("ip_address", "example.org"),
            ("port", 65536),
            ("port", -1),
            ("port", "http"),
            ("ip_seen_at", "yesterday"),
            ("ip_seen_at", "2026-13-01T00:00:00Z"),
            ("ip_seen_at", _in(hours=1)),
            ("country", "gb"),
            ("country", "GBR"),
            ("country", "G1"),
            ("account_created_at", "2025-06-31"),
            ("account_created_at", _in(days=1)),
            ("linked_accounts", "user-43"),
            ("linked_accounts", [""]),
            ("linked_accounts", ["x" * 256]),
            ("linked_accounts", [f"user-{i}" for i in range(51)]),
        ],
    )
    def test_an_invalid_subject_field_gets_400_naming_it_and_stores_nothing(
        self, platform_client: APIClient, field: str, value: Any
    ) -> None:
        response = submit_item(platform_client, subject={**SUBJECT, field: value})
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "invalid" and list(error["fields"]) == ["subject"]
        assert list(error["fields"]["subject"]) == [field]
        assert not Item.objects.exists() and not Case.objects.exists()
        assert not AuditEvent.objects.filter(verb__startswith="item.").exists()

    def test_an_invalid_multipart_subject_field_gets_400_naming_it(
        self, platform_client: APIClient
    ) -> None:
        response = submit_item(
            platform_client, media=_jpeg(), subject=json.dumps({**SUBJECT, "port": 70000})
        )
        assert response.status_code == 400
        assert list(response.json()["error"]["fields"]["subject"]) == ["port"]
        assert not Item.objects.exists() and not Media.objects.exists()

    def test_times_a_few_minutes_ahead_are_clock_skew_and_accepted(
        self, platform_client: APIClient
    ) -> None:
        subject = {**SUBJECT, "ip_seen_at": _in(minutes=2), "account_created_at": _in(minutes=2)}
        response = submit_item(platform_client, subject=subject)
        assert response.status_code == 201, response.content

    def test_the_reported_users_details_stay_out_of_the_audit_log_and_the_logs(
        self, platform_client: APIClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        response = submit_item(platform_client, media=_jpeg(), subject=json.dumps(SUBJECT))
        assert response.status_code == 201
        received = AuditEvent.objects.get(verb="item.received")
        # What intake audited before subject details existed, and no more.
        assert set(received.data) == {"source", "external_id", "kind", "case", "flag", "category"}
        audited = json.dumps(list(AuditEvent.objects.values("data", "object_id", "actor_label")))
        logged = "\n".join(record.getMessage() for record in caplog.records)
        for value in PERSONAL:
            assert value not in audited and value not in logged
