"""The escalation-rules API: admins create rules; rejections are explained."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import client_for


@pytest.mark.django_db
class EscalationRuleApiTests:
    def test_the_api_creates_rules_for_admins_only_and_explains_rejections(
        self, admin_user: Any, lead: Any, outsider: Any
    ) -> None:
        rule = {
            "name": "Grooming to leads",
            "conditions": [{"field": "category", "op": "eq", "value": "grooming"}],
            "actions": [{"type": "open_escalation", "tier": "lead"}],
        }
        response = client_for(admin_user).post("/api/v1/escalation-rules", rule, format="json")
        assert response.status_code == 201 and response.json()["version"] == 1
        bad = {**rule, "name": "Bad", "conditions": [{"field": "x", "op": "eq", "value": 1}]}
        response = client_for(admin_user).post("/api/v1/escalation-rules", bad, format="json")
        assert response.status_code == 400
        assert "unknown field 'x'" in json.dumps(response.json())
        assert (
            client_for(lead).post("/api/v1/escalation-rules", rule, format="json").status_code
            == 403
        )
        assert client_for(outsider).get("/api/v1/escalation-rules").status_code == 403
        assert (
            client_for(admin_user).get("/api/v1/escalation-rules").json()[0]["name"]
            == "Grooming to leads"
        )
