"""The cases API: decisions by the holder only, with clear 4xx; the immediate-risk action."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.utils.dateparse import parse_datetime

from moderation.models import Decision, Escalation
from moderation.services.queue import case_claim_next
from tests.conftest import client_for
from tests.moderation.factories import (
    make_case,
    make_claimed_image_case,
    make_reported_user_case,
)


@pytest.mark.django_db
class CaseDecisionApiTests:
    def test_deciding_a_case_you_dont_hold_is_refused_and_records_nothing(
        self, moderator: Any, moderator2: Any
    ) -> None:
        case, _ = make_claimed_image_case(moderator)
        response = client_for(moderator2).post(
            f"/api/v1/cases/{case.pk}/decision", {"outcome": "no_violation"}, format="json"
        )
        assert response.status_code == 409
        assert "don't hold" in response.json()["error"]["message"]
        assert not Decision.objects.exists()

    def test_invalid_outcomes_and_categories_get_400(self, moderator: Any) -> None:
        case, _ = make_claimed_image_case(moderator)
        client = client_for(moderator)
        url = f"/api/v1/cases/{case.pk}/decision"
        assert client.post(url, {"outcome": "vaporise"}, format="json").status_code == 400
        assert (
            client.post(
                url, {"outcome": "remove", "categories": ["nope"]}, format="json"
            ).status_code
            == 400
        )
        response = client.post(url, {"outcome": "remove"}, format="json")
        assert response.status_code == 400 and "category" in str(response.json())
        assert not Decision.objects.exists()

    def test_escalating_sends_the_case_to_the_leads(self, moderator: Any, lead: Any) -> None:
        case, _ = make_claimed_image_case(moderator, category="search_abuse")
        response = client_for(moderator).post(
            f"/api/v1/cases/{case.pk}/decision",
            {"outcome": "escalate", "categories": ["grooming"], "rationale": "looks like contact"},
            format="json",
        )
        assert response.status_code == 201
        case.refresh_from_db()
        assert case.status == "open" and case.restricted and case.priority == 1
        assert case_claim_next(user=moderator) is None
        assert case_claim_next(user=lead).pk == case.pk


@pytest.mark.django_db
class CaseImmediateRiskApiTests:
    def test_one_action_makes_the_case_p0_and_pages_on_call_leads(
        self, moderator: Any, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        case = make_case(kind="message", category="grooming")
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(moderator).post(
                f"/api/v1/cases/{case.pk}/immediate-risk",
                {"reason": "arranging to meet"},
                format="json",
            )
        assert response.status_code == 201
        case.refresh_from_db()
        assert case.immediate_risk and case.priority == 0
        escalation = Escalation.objects.get(case=case)
        assert escalation.tier == "immediate_risk" and escalation.page_count == 1
        assert [m.to for m in mail.outbox] == [[lead.email]]
        assert "CHILD AT IMMEDIATE RISK" in mail.outbox[0].subject


# The reported user's personal data, which only leads and admins may read.
PERSONAL = ("Sam Example", "sam@example.org", "7700 900123", "2001:db8::7", "sam_alt")


@pytest.mark.django_db
class CaseSubjectApiTests:
    """Items in a case carry `subject` (the reported user's details) for leads and admins only."""

    @pytest.mark.parametrize("persona", ["lead", "admin_user"])
    def test_leads_and_admins_get_the_subject_of_each_item(
        self, persona: str, request: pytest.FixtureRequest
    ) -> None:
        case = make_reported_user_case()
        response = client_for(request.getfixturevalue(persona)).get(f"/api/v1/cases/{case.pk}")
        assert response.status_code == 200
        subject = response.json()["items"][0]["subject"]
        item = case.items.get()
        assert subject == {
            "account_id": "user-42",
            "username": "sam_example",
            "display_name": "Sam Example",
            "email": "sam@example.org",
            "phone": "+44 7700 900123",
            "ip_address": "2001:db8::7",
            "port": 51234,
            "ip_seen_at": subject["ip_seen_at"],
            "country": "GB",
            "account_created_at": subject["account_created_at"],
            "linked_accounts": ["user-43", "sam_alt"],
        }
        assert parse_datetime(subject["ip_seen_at"]) == item.subject_ip_seen_at
        assert parse_datetime(subject["account_created_at"]) == item.subject_account_created_at

    def test_a_moderator_gets_the_account_but_no_subject_details(self, moderator: Any) -> None:
        case = make_reported_user_case()
        response = client_for(moderator).get(f"/api/v1/cases/{case.pk}")
        assert response.status_code == 200
        item = response.json()["items"][0]
        assert "subject" not in item
        assert (item["subject_account_id"], item["subject_username"]) == ("user-42", "sam_example")
        for value in PERSONAL:
            assert value not in response.content.decode()

    def test_a_moderator_claiming_the_case_gets_no_subject_details_either(
        self, moderator: Any
    ) -> None:
        make_reported_user_case()
        response = client_for(moderator).post("/api/v1/cases/next")
        assert response.status_code == 200
        assert "subject" not in response.json()["items"][0]

    def test_outsiders_get_403_and_restricted_cases_404(
        self, moderator: Any, outsider: Any
    ) -> None:
        case = make_reported_user_case()
        assert client_for(outsider).get(f"/api/v1/cases/{case.pk}").status_code == 403
        case.restricted = True
        case.save(update_fields=["restricted"])
        assert client_for(moderator).get(f"/api/v1/cases/{case.pk}").status_code == 404

    def test_the_schema_documents_subject_as_optional(self, lead: Any) -> None:
        schema = client_for(lead).get("/api/schema/?format=json").json()
        item = schema["components"]["schemas"]["ItemSummary"]
        assert "subject" in item["properties"] and "subject" not in item.get("required", [])
        intake = schema["components"]["schemas"]["ItemInputRequest"]["properties"]["subject"]
        assert intake
