"""The rule edit page with its builder: the page carries the builder's schema and the server's
messages mapped to rows, and still works as a plain JSON form without a script."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from moderation.models import EscalationRule
from tests.conftest import client_for

GROOMING = {"field": "category", "op": "eq", "value": "grooming"}


def _script_json(html: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert match, element_id
    return json.loads(match.group(1))


def _post(client: Any, conditions: Any, actions: Any, **extra: str) -> Any:
    return client.post(
        "/rules/new",
        {
            "name": "R",
            "order": "10",
            "enabled": "on",
            "conditions": json.dumps(conditions),
            "actions": json.dumps(actions),
            **extra,
        },
    )


@pytest.mark.django_db
class RuleBuilderPageTests:
    def test_the_page_carries_the_builder_and_keeps_the_json_form(self, admin_user: Any) -> None:
        html = client_for(admin_user).get("/rules/new").content.decode()
        schema = _script_json(html, "rule-builder-schema")
        assert "draft_referral" in [a["type"] for a in schema["actions"]]
        assert _script_json(html, "rule-builder-errors")["general"] == []
        # Without a script the JSON textareas are the form: shown, open, named as before.
        assert '<details id="rule-json" open>' in html
        assert 'name="conditions"' in html and 'name="actions"' in html
        assert "js/rule_builder" in html
        assert "<script>" not in html  # no inline script (CSP)

    def test_the_servers_messages_come_back_mapped_to_rows(self, admin_user: Any) -> None:
        response = _post(
            client_for(admin_user),
            [GROOMING, {"field": "match.distance", "op": "gte", "value": 999}],
            [{"type": "notify", "channel": "email", "to": "nobody"}],
        )
        assert response.status_code == 400
        errors = _script_json(response.content.decode(), "rule-builder-errors")
        assert list(errors["conditions"]) == ["1"] and list(errors["actions"]) == ["0"]
        assert "not an email address" in errors["actions"]["0"][0]
        assert not EscalationRule.objects.exists()

    def test_a_json_error_stays_general(self, admin_user: Any) -> None:
        response = client_for(admin_user).post(
            "/rules/new", {"name": "R", "order": "1", "conditions": "[{", "actions": "[]"}
        )
        errors = _script_json(response.content.decode(), "rule-builder-errors")
        assert errors["conditions"] == {} and "not valid JSON" in errors["general"][0]

    def test_the_preview_and_save_work_as_before(self, admin_user: Any) -> None:
        client = client_for(admin_user)
        actions = [{"type": "open_escalation", "tier": "lead"}]
        preview = _post(client, [GROOMING], actions, preview="1")
        assert preview.status_code == 200 and "would have matched 0 of" in preview.content.decode()
        assert _post(client, [GROOMING], actions).status_code == 302
        assert EscalationRule.objects.get().conditions == [GROOMING]

    def test_leads_moderators_and_outsiders_may_not_open_it(
        self, lead: Any, moderator: Any, outsider: Any
    ) -> None:
        for user in (lead, moderator, outsider):
            assert client_for(user).get("/rules/new").status_code == 403
