"""The user-report API: a report adds a flag (once) and raises the case; unknown items need
details; a platform cannot report on another platform's item."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from moderation.models import Case, Flag, Item
from tests.moderation.factories import submit_item


@pytest.mark.django_db
class ReportCreateApiTests:
    def test_a_report_adds_a_flag_and_raises_the_case(self, platform_client: APIClient) -> None:
        body = submit_item(platform_client, category_hint="search_abuse").json()
        response = platform_client.post(
            "/api/v1/reports",
            {
                "source": "acme",
                "external_id": "post-1",
                "report_id": "r-1",
                "reporter": "user-7",
                "category": "grooming",
                "note": "asked to keep secrets",
            },
            format="json",
        )
        assert response.status_code == 201
        assert Flag.objects.filter(source="user_report", item_id=body["id"]).count() == 1
        assert Case.objects.get(pk=body["case_id"]).priority == 1

    def test_the_same_report_twice_is_stored_once(self, platform_client: APIClient) -> None:
        submit_item(platform_client)
        payload = {"source": "acme", "external_id": "post-1", "report_id": "r-1"}
        first = platform_client.post("/api/v1/reports", payload, format="json")
        second = platform_client.post("/api/v1/reports", payload, format="json")
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["flag_id"] == second.json()["flag_id"]

    def test_a_report_about_a_new_item_creates_it(self, platform_client: APIClient) -> None:
        response = platform_client.post(
            "/api/v1/reports",
            {
                "source": "acme",
                "external_id": "new-1",
                "report_id": "r-9",
                "item": {
                    "source": "acme",
                    "external_id": "new-1",
                    "kind": "message",
                    "text": "synthetic",
                },
            },
            format="json",
        )
        assert response.status_code == 201
        item = Item.objects.get(external_id="new-1")
        assert set(item.flags.values_list("source", flat=True)) == {"user_report"}

    def test_a_new_item_in_a_report_takes_the_reported_users_details(
        self, platform_client: APIClient
    ) -> None:
        item = {
            "source": "acme",
            "external_id": "new-2",
            "kind": "message",
            "text": "synthetic",
            "subject": {"ip_address": "192.0.2.9", "port": 443, "email": "sam@example.org"},
        }
        payload = {"source": "acme", "external_id": "new-2", "item": item}
        response = platform_client.post("/api/v1/reports", payload, format="json")
        assert response.status_code == 201, response.content
        stored = Item.objects.get(external_id="new-2")
        assert (stored.subject_ip, stored.subject_port) == ("192.0.2.9", 443)
        assert stored.subject_email == "sam@example.org"
        bad_item = {**item, "external_id": "new-3", "subject": {"port": 70000}}
        bad = platform_client.post(
            "/api/v1/reports", {**payload, "external_id": "new-3", "item": bad_item}, format="json"
        )
        assert bad.status_code == 400
        assert list(bad.json()["error"]["fields"]["item"]["subject"]) == ["port"]

    def test_a_report_about_an_unknown_item_without_details_is_refused(
        self, platform_client: APIClient
    ) -> None:
        response = platform_client.post(
            "/api/v1/reports", {"source": "acme", "external_id": "ghost"}, format="json"
        )
        assert response.status_code == 400 and "item" in response.json()["error"]["fields"]

    def test_a_platform_cannot_report_on_another_platforms_item(
        self, platform_client: APIClient, other_platform_client: APIClient
    ) -> None:
        submit_item(platform_client)
        response = other_platform_client.post(
            "/api/v1/reports", {"source": "acme", "external_id": "post-1"}, format="json"
        )
        assert response.status_code == 400
        assert not Flag.objects.filter(source="user_report").exists()

    def test_a_report_with_another_platforms_id_opens_the_reporters_own_item(
        self, platform_client: APIClient, other_platform_client: APIClient
    ) -> None:
        mine = submit_item(platform_client).json()
        item = {"source": "acme", "external_id": "post-1", "kind": "text", "text": "synthetic"}
        response = other_platform_client.post(
            "/api/v1/reports",
            {"source": "acme", "external_id": "post-1", "item": item},
            format="json",
        )
        assert response.status_code == 201, response.content
        assert response.json()["item_id"] != mine["id"]
        assert not Flag.objects.filter(source="user_report", item_id=mine["id"]).exists()
