"""The cases API: decisions by the holder only, with clear 4xx; the immediate-risk action."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from moderation.models import Decision, Escalation
from moderation.services.queue import case_claim_next
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_claimed_image_case


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
