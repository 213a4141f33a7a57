"""The rules console: the edit form shows errors and previews matches before saving."""

from __future__ import annotations

import json
from typing import Any

import pytest

from moderation.models import Escalation, EscalationRule
from principles.models import HarmCategory
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_rule


@pytest.mark.django_db
class RuleEditViewTests:
    def test_the_console_form_shows_errors_and_previews_matches(self, admin_user: Any) -> None:
        make_case(kind="message", category="grooming")
        client = client_for(admin_user)
        response = client.post(
            "/rules/new",
            {
                "name": "X",
                "order": "1",
                "enabled": "on",
                "conditions": "[{bad json",
                "actions": "[]",
            },
        )
        assert response.status_code == 400 and "not valid JSON" in response.content.decode()
        conditions = json.dumps([{"field": "category", "op": "eq", "value": "grooming"}])
        actions = json.dumps([{"type": "restrict_case"}])
        response = client.post(
            "/rules/new",
            {
                "name": "X",
                "order": "1",
                "conditions": conditions,
                "actions": actions,
                "preview": "1",
            },
        )
        assert "would have matched 1 of" in response.content.decode()
        assert not EscalationRule.objects.exists()
        response = client.post(
            "/rules/new",
            {
                "name": "X",
                "order": "1",
                "enabled": "on",
                "conditions": conditions,
                "actions": actions,
            },
        )
        assert response.status_code == 302 and EscalationRule.objects.count() == 1


@pytest.mark.django_db
class RuleListViewTests:
    def test_the_list_names_fields_values_and_actions_as_the_builder_does(
        self, admin_user: Any
    ) -> None:
        make_rule(
            admin_user,
            "grooming to a lead",
            [
                {"field": "category", "op": "eq", "value": "grooming"},
                {"field": "uk_linked", "op": "eq", "value": True},
            ],
            [{"type": "open_escalation", "tier": "lead"}, {"type": "restrict_case"}],
        )
        html = client_for(admin_user).get("/rules/").content.decode()
        grooming = HarmCategory.objects.get(code="grooming").label
        lead = dict(Escalation.Tier.choices)["lead"]
        assert f"Harm category is {grooming}<br>UK-linked is yes" in html
        assert f"Open an escalation: {lead}<br>Restrict the case to leads" in html
        assert "open_escalation" not in html and "category eq" not in html
