"""The batch intake API (POST /api/v1/items/batch): per-item results in request order,
idempotent per platform account + source + external_id, a bad item never fails its
neighbours, malformed batches refused whole with the index and field, the audit chain intact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.audit import audit_seal, audit_verify_chain
from core.evidence_crypto import evidence_read_bytes
from core.models import AuditEvent
from moderation.api.items import BATCH_MAX_ITEMS
from moderation.media.synthetic import synthetic_jpeg
from moderation.models import Case, Flag, Item, Media
from moderation.services import intake
from tests.conftest import client_for

URL = "/api/v1/items/batch"


def _text(external_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": "acme",
        "external_id": external_id,
        "kind": "text",
        "text": "a synthetic flagged message",
        **extra,
    }


def _post(client: APIClient, items: list[Any]) -> Any:
    return client.post(URL, {"items": items}, format="json")


def _multipart(client: APIClient, items: list[dict[str, Any]], files: dict[str, bytes]) -> Any:
    data: dict[str, Any] = {"items": json.dumps(items)}
    for name, content in files.items():
        data[name] = SimpleUploadedFile(f"{name}.jpg", content, content_type="image/jpeg")
    return client.post(URL, data, format="multipart")


@pytest.mark.django_db
class ItemBatchCreateApiTests:
    def test_each_item_is_answered_in_request_order_and_stored(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        items = [_text(f"t-{i}", subject_account_id=f"user-{i}") for i in range(5)]
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = _post(platform_client, items)
        assert response.status_code == 200, response.content
        body = response.json()
        assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
        assert {r["status"] for r in body["results"]} == {201}
        assert (body["created"], body["existing"], body["failed"]) == (5, 0, 0)
        for i, result in enumerate(body["results"]):
            item = Item.objects.get(pk=result["item"]["id"])
            assert item.external_id == f"t-{i}" and item.case_id == result["item"]["case_id"]
            assert result["item"]["status_url"] == f"/api/v1/items/{item.pk}"
        assert Case.objects.count() == 5 and Flag.objects.count() == 5
        assert AuditEvent.objects.filter(verb="item.received").count() == 5
        assert AuditEvent.objects.filter(verb="case.opened").count() == 5
        assert len(callbacks) == 1  # the rules for all five cases in one message

    def test_a_multipart_batch_stores_several_files_with_their_custody_hashes(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        files = {f"file{i}": synthetic_jpeg(i, 320, 240, quality=85) for i in range(3)}
        items = [
            {"source": "acme", "external_id": f"img-{i}", "kind": "image", "media": f"file{i}"}
            for i in range(3)
        ] + [_text("t-1")]
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = _multipart(platform_client, items, files)
        assert response.status_code == 200, response.content
        results = response.json()["results"]
        assert [r["status"] for r in results] == [201, 201, 201, 201]
        for i in range(3):
            media = Media.objects.get(item_id=results[i]["item"]["id"])
            assert media.sha256 == hashlib.sha256(files[f"file{i}"]).hexdigest()
            assert evidence_read_bytes(media.file.path) == files[f"file{i}"]
            assert media.hash_status == "pending"
        assert AuditEvent.objects.filter(verb="media.stored").count() == 3
        # One rules message and one hashing message (3 images fit in one batch).
        assert len(callbacks) == 2
        assert not any((Path(settings.EVIDENCE_ROOT) / "staging").iterdir())

    def test_files_are_encrypted_before_the_subjects_cases_are_locked(
        self, platform_client: APIClient
    ) -> None:
        """A chunk's files are written and synced before its cases are locked, so a
        moderator deciding one of those cases does not wait for the disk."""
        calls: list[str] = []
        real_encrypt, real_attach = intake.encrypt_file, intake._attach_cases

        def encrypt(*args: Any, **kwargs: Any) -> Any:
            calls.append("file")
            return real_encrypt(*args, **kwargs)

        def attach(*args: Any, **kwargs: Any) -> Any:
            calls.append("lock cases")
            return real_attach(*args, **kwargs)

        files = {f"o{i}": synthetic_jpeg(40 + i, 320, 240, quality=85) for i in range(3)}
        items = [
            {"source": "acme", "external_id": f"o-{i}", "kind": "image", "media": f"o{i}"}
            for i in range(3)
        ]
        with (
            mock.patch.object(intake, "encrypt_file", encrypt),
            mock.patch.object(intake, "_attach_cases", attach),
        ):
            response = _multipart(platform_client, items, files)
        assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]
        assert calls == ["file", "file", "file", "lock cases"]

    def test_the_worker_hashes_a_batch_and_each_item_reads_back_ready(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        files = {f"f{i}": synthetic_jpeg(10 + i, 320, 240, quality=85) for i in range(2)}
        items = [
            {"source": "acme", "external_id": f"h-{i}", "kind": "image", "media": f"f{i}"}
            for i in range(2)
        ]
        with django_capture_on_commit_callbacks(execute=True):
            results = _multipart(platform_client, items, files).json()["results"]
        for result in results:
            detail = platform_client.get(f"/api/v1/items/{result['item']['id']}").json()
            assert detail["status"] == "ready" and detail["media"]["hash_status"] == "done"

    def test_a_batch_sent_again_is_answered_200_with_the_same_ids_and_stores_nothing(
        self, platform_client: APIClient
    ) -> None:
        items = [_text(f"r-{i}") for i in range(3)]
        first = _post(platform_client, items).json()["results"]
        counts = (Item.objects.count(), Flag.objects.count(), AuditEvent.objects.count())
        again = _post(platform_client, [_text("r-new"), *items]).json()
        assert [r["status"] for r in again["results"]] == [201, 200, 200, 200]
        assert [r["item"]["id"] for r in again["results"][1:]] == [r["item"]["id"] for r in first]
        assert again["results"][1]["item"]["created"] is False
        assert Item.objects.count() == counts[0] + 1 and Flag.objects.count() == counts[1] + 1

    def test_an_item_sent_singly_before_is_answered_200_in_a_batch(
        self, platform_client: APIClient
    ) -> None:
        single = platform_client.post("/api/v1/items", _text("s-1"), format="json").json()
        result = _post(platform_client, [_text("s-1")]).json()["results"][0]
        assert result["status"] == 200 and result["item"]["id"] == single["id"]

    def test_duplicates_inside_a_batch_make_one_item_and_both_get_its_id(
        self, platform_client: APIClient
    ) -> None:
        results = _post(platform_client, [_text("d-1"), _text("x"), _text("d-1")]).json()["results"]
        assert [r["status"] for r in results] == [201, 201, 200]
        assert results[0]["item"]["id"] == results[2]["item"]["id"]
        assert Item.objects.filter(external_id="d-1").count() == 1

    def test_good_items_are_stored_and_bad_ones_answered_with_the_single_endpoints_error(
        self, platform_client: APIClient
    ) -> None:
        items = [
            _text("g-1"),
            {"source": "acme", "external_id": "b-1", "kind": "hologram"},
            _text("g-2"),
            {"source": "acme", "external_id": "b-2", "kind": "text"},
        ]
        response = _post(platform_client, items)
        assert response.status_code == 200
        body = response.json()
        assert [r["status"] for r in body["results"]] == [201, 400, 201, 400]
        assert (body["created"], body["failed"]) == (2, 2)
        for index in (1, 3):
            single = platform_client.post("/api/v1/items", items[index], format="json").json()
            assert body["results"][index]["error"] == single["error"]
        assert list(body["results"][1]["error"]["fields"]) == ["kind"]
        assert list(body["results"][3]["error"]["fields"]) == ["text"]
        assert set(Item.objects.values_list("external_id", flat=True)) == {"g-1", "g-2"}

    def test_one_serializer_validates_every_item_with_no_state_carried_between_them(
        self, platform_client: APIClient
    ) -> None:
        bad = [
            _text("n-1", subject={"email": "not an address"}),
            _text("n-2", subject="a string"),
            {"source": "bad source!", "external_id": "n-3", "kind": "image"},
            _text("n-4", subject_country="gb", uk_linked="perhaps"),
        ]
        items = [bad[0], _text("ok-1", subject={"email": "a@example.org"}), *bad[1:]]
        body = _post(platform_client, items).json()
        assert [r["status"] for r in body["results"]] == [400, 201, 400, 400, 400]
        for index, item in enumerate(items):
            if index == 1:
                continue
            single = platform_client.post("/api/v1/items", item, format="json").json()
            assert body["results"][index]["error"] == single["error"], index
        stored = Item.objects.get(external_id="ok-1")
        assert stored.subject_email == "a@example.org"

    def test_a_refused_file_fails_only_its_own_item(self, platform_client: APIClient) -> None:
        files = {"good": synthetic_jpeg(5, 320, 240), "bad": synthetic_jpeg(6, 320, 240)[:300]}
        items = [
            {"source": "acme", "external_id": "ok", "kind": "image", "media": "good"},
            {"source": "acme", "external_id": "no", "kind": "image", "media": "bad"},
        ]
        response = _multipart(platform_client, items, files)
        results = response.json()["results"]
        assert [r["status"] for r in results] == [201, 400]
        assert results[1]["error"]["code"] in {"truncated", "corrupt", "unsupported_type"}
        assert not Item.objects.filter(external_id="no").exists()
        assert not any((Path(settings.EVIDENCE_ROOT) / "staging").iterdir())

    def test_more_than_the_limit_is_413_naming_it_and_stores_nothing(
        self, platform_client: APIClient
    ) -> None:
        items = [_text(f"n-{i}") for i in range(BATCH_MAX_ITEMS + 1)]
        response = _post(platform_client, items)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_many_items"
        assert str(BATCH_MAX_ITEMS) in response.json()["error"]["message"]
        assert not Item.objects.exists()

    @pytest.mark.parametrize(
        ("payload", "fields"),
        [
            ({}, {"items": ["This field is required: a list of items."]}),
            ({"items": {"a": 1}}, {"items": ["Must be a list of items."]}),
            ({"items": []}, {"items": ["The list is empty."]}),
            (
                {"items": [{"source": "acme", "external_id": "a", "kind": "text", "text": "t"}, 7]},
                {"items": {"1": {"non_field_errors": ["Must be a JSON object (one item)."]}}},
            ),
            (
                {"items": [{"source": "acme", "external_id": "a", "kind": "image", "media": "f"}]},
                {"items": {"0": {"media": ["Must name a file part of this multipart request."]}}},
            ),
        ],
    )
    def test_a_malformed_batch_is_400_naming_the_index_and_field(
        self, platform_client: APIClient, payload: dict[str, Any], fields: dict[str, Any]
    ) -> None:
        response = platform_client.post(URL, payload, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == fields
        assert not Item.objects.exists()

    def test_a_file_part_no_item_names_refuses_the_batch(self, platform_client: APIClient) -> None:
        response = _multipart(platform_client, [_text("t")], {"stray": synthetic_jpeg(1)})
        assert response.status_code == 400
        assert "stray" in response.json()["error"]["fields"]["items"][0]
        assert not Item.objects.exists()

    def test_two_items_naming_one_file_part_refuse_the_batch(
        self, platform_client: APIClient
    ) -> None:
        items = [
            {"source": "acme", "external_id": f"i-{i}", "kind": "image", "media": "f"}
            for i in range(2)
        ]
        response = _multipart(platform_client, items, {"f": synthetic_jpeg(1)})
        assert response.status_code == 400
        assert "1" in response.json()["error"]["fields"]["items"]

    def test_items_in_one_subjects_case_raise_it_to_the_most_severe(
        self, platform_client: APIClient
    ) -> None:
        items = [
            _text("c-1", subject_account_id="u", category_hint="search_abuse"),
            _text("c-2", subject_account_id="u", category_hint="grooming"),
        ]
        results = _post(platform_client, items).json()["results"]
        assert results[0]["item"]["case_id"] == results[1]["item"]["case_id"]
        case = Case.objects.get(pk=results[0]["item"]["case_id"])
        assert case.priority == 1 and case.category.code == "grooming"
        assert len(case.priority_reasons) == 2
        # A later batch joins the open case instead of opening another.
        later = _post(platform_client, [_text("c-3", subject_account_id="u")]).json()
        assert later["results"][0]["item"]["case_id"] == case.pk

    def test_the_audit_chain_verifies_after_a_batch(self, platform_client: APIClient) -> None:
        _post(platform_client, [_text(f"a-{i}") for i in range(20)])
        audit_seal()
        assert audit_verify_chain().ok

    def test_two_platforms_batches_with_the_same_ids_do_not_collide(
        self, platform_client: APIClient, other_platform_client: APIClient
    ) -> None:
        mine = _post(platform_client, [_text("same")]).json()["results"][0]
        theirs = _post(other_platform_client, [_text("same")]).json()["results"][0]
        assert (mine["status"], theirs["status"]) == (201, 201)
        assert mine["item"]["id"] != theirs["item"]["id"]

    def test_a_batch_costs_a_bounded_number_of_queries_not_a_few_per_item(
        self, platform_client: APIClient
    ) -> None:
        _post(platform_client, [_text("warm")])  # token bookkeeping, categories
        with CaptureQueriesContext(connection) as ten:
            _post(platform_client, [_text(f"q-{i}", subject_account_id=f"u{i}") for i in range(10)])
        with CaptureQueriesContext(connection) as fifty:
            _post(platform_client, [_text(f"Q-{i}", subject_account_id=f"U{i}") for i in range(50)])
        assert len(fifty) == len(ten)


@pytest.mark.django_db
class ItemBatchAccessTests:
    def test_anonymous_and_people_without_the_permission_cannot_submit(
        self, outsider: Any, moderator: Any, lead: Any
    ) -> None:
        assert APIClient().post(URL, {"items": []}, format="json").status_code == 401
        for user in (outsider, moderator, lead):
            assert (
                client_for(user).post(URL, {"items": [_text("x")]}, format="json").status_code
                == 403
            )
        assert not Item.objects.exists()

    def test_an_admin_may_submit_in_house_items(self, admin_user: Any) -> None:
        response = client_for(admin_user).post(URL, {"items": [_text("x")]}, format="json")
        assert response.status_code == 200
        assert response.json()["results"][0]["status"] == 201
        assert Item.objects.get().platform_account is None

    def test_a_platform_reads_back_only_its_own_batch_items(
        self, platform_client: APIClient, other_platform_client: APIClient
    ) -> None:
        item_id = _post(platform_client, [_text("mine")]).json()["results"][0]["item"]["id"]
        assert platform_client.get(f"/api/v1/items/{item_id}").status_code == 200
        assert other_platform_client.get(f"/api/v1/items/{item_id}").status_code == 404


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_chunk_that_fails_after_its_files_are_written_leaves_no_file_and_can_be_resent(
    platform_client: APIClient,
) -> None:
    files = {f"r{i}": synthetic_jpeg(50 + i, 320, 240, quality=85) for i in range(2)}
    items = [
        {"source": "acme", "external_id": f"r-{i}", "kind": "image", "media": f"r{i}"}
        for i in range(2)
    ]
    with mock.patch.object(
        intake, "audit_record_many", side_effect=OperationalError("connection lost")
    ):
        response = _multipart(platform_client, items, files)
    assert response.status_code == 503, response.content
    connection.close()  # what the end of a real request does after a database error
    assert not Item.objects.exists() and not Media.objects.exists()
    root = Path(settings.EVIDENCE_ROOT)
    assert not [p for p in root.rglob("*") if p.is_file()], "an orphaned evidence file"
    again = _multipart(platform_client, items, files)
    assert [r["status"] for r in again.json()["results"]] == [201, 201]
    for i in range(2):
        media = Media.objects.get(item__external_id=f"r-{i}")
        assert evidence_read_bytes(media.file.path) == files[f"r{i}"]
