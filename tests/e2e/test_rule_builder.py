"""An admin builds an escalation rule through the rule builder's rows, in headless Chromium."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from moderation.models import EscalationRule
from tests.e2e.conftest import login, screenshot
from tests.moderation.factories import make_case

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class RuleBuilderTests:
    def test_an_admin_builds_a_rule_fixes_a_bad_row_previews_and_saves(
        self, page: Any, live_server: Any, admin_user: Any
    ) -> None:
        make_case(kind="message", category="grooming")
        make_case(kind="text", category="search_abuse")
        login(page, live_server, "admin1")
        page.goto(f"{live_server.url}/rules/new")
        # The builder is drawn over the JSON, which folds away under "Advanced: edit JSON".
        expect(page.get_by_label("Condition 1: field")).to_be_visible()
        expect(page.get_by_label("Conditions (all must hold; JSON)")).to_be_hidden()
        page.get_by_label("Name").fill("Grooming reported by users")

        page.get_by_label("Condition 1: field").select_option("category")
        page.get_by_label("Condition 1: operator").select_option("in")
        page.get_by_label("Condition 1: value").select_option(["grooming", "sextortion_coercion"])
        page.get_by_role("button", name="Add a condition").click()
        page.get_by_label("Condition 2: field").select_option("priority")
        page.get_by_label("Condition 2: operator").select_option("lte")
        page.get_by_label("Condition 2: value").select_option("2")

        page.get_by_label("Action 1: action").select_option("notify")
        page.get_by_label("Action 1: Channel").select_option("email")
        page.get_by_label("Action 1: To").fill("safety-team")  # not an address
        page.get_by_role("button", name="Save rule").click()

        # The server's message shows beside the row it concerns, and in the summary.
        bad_row = page.locator('[data-row="action-0"]')
        expect(bad_row.get_by_text("is not an email address")).to_be_visible()
        expect(page.locator("#rule-errors").get_by_text("is not an email address")).to_be_visible()
        expect(page.locator('[data-row="condition-0"] .rb-errors')).to_have_count(0)
        assert page.get_by_label("Action 1: To").get_attribute("aria-invalid") == "true"
        screenshot(page, "rule-builder-error")
        assert not EscalationRule.objects.exists()

        page.get_by_label("Action 1: To").fill("safety@example.org")
        page.get_by_role("button", name="Test this rule on recent cases").click()
        matched = page.get_by_text("It would have matched 1 of the 200 most recent cases")
        expect(matched).to_be_visible()
        # The rows came back from the JSON as they were built.
        expect(page.get_by_label("Condition 2: value")).to_have_value("2")
        expect(page.get_by_label("Action 1: To")).to_have_value("safety@example.org")

        # The advanced view shows the same JSON the rows make.
        page.get_by_text("Advanced: edit JSON").click()
        built = json.loads(page.get_by_label("Conditions (all must hold; JSON)").input_value())
        assert built[1] == {"field": "priority", "op": "lte", "value": 2}
        screenshot(page, "rule-builder-preview")

        page.get_by_role("button", name="Save rule").click()
        page.wait_for_url(f"{live_server.url}/rules/")
        rule = EscalationRule.objects.get()
        assert rule.name == "Grooming reported by users"
        assert rule.conditions == [
            {"field": "category", "op": "in", "value": ["grooming", "sextortion_coercion"]},
            {"field": "priority", "op": "lte", "value": 2},
        ]
        assert rule.actions == [{"type": "notify", "channel": "email", "to": "safety@example.org"}]

    def test_an_edit_of_the_json_redraws_the_rows(
        self, page: Any, live_server: Any, admin_user: Any
    ) -> None:
        login(page, live_server, "admin1")
        page.goto(f"{live_server.url}/rules/new")
        page.get_by_text("Advanced: edit JSON").click()
        page.get_by_label("Actions (JSON)").fill('[{"type": "set_priority", "priority": 1}]')
        expect(page.get_by_label("Action 1: action")).to_have_value("set_priority")
        expect(page.get_by_label("Action 1: Priority")).to_have_value("1")
        page.get_by_label("Actions (JSON)").fill('[{"type": ')
        expect(page.get_by_text("Actions: the JSON is not valid yet.")).to_be_visible()

    def test_the_builder_has_no_axe_violations_with_errors_on_a_desktop_or_a_phone(
        self, page: Any, live_server: Any, admin_user: Any
    ) -> None:
        from axe_playwright_python.sync_playwright import Axe

        login(page, live_server, "admin1")
        page.goto(f"{live_server.url}/rules/new")
        page.get_by_label("Name").fill("R")
        page.get_by_role("button", name="Add a condition").click()
        page.get_by_label("Condition 2: field").select_option("hash_list")
        page.get_by_label("Condition 2: operator").select_option("in")
        page.get_by_role("button", name="Save rule").click()
        expect(page.locator('[data-row="condition-1"] .rb-errors')).to_be_visible()
        findings = []
        for width in (1440, 390):
            page.set_viewport_size({"width": width, "height": 900})
            violations = Axe().run(page).response["violations"]
            findings += [
                f"{width} {v['id']}: {[n['target'] for n in v['nodes'][:4]]}" for v in violations
            ]
        assert findings == [], "\n".join(findings)
