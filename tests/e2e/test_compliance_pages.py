"""Compliance charts render in a real browser."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, screenshot
from tests.moderation.factories import make_case

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class CompliancePagesTests:
    def test_an_admin_sees_per_principle_metrics_charts_and_coverage(
        self, page: Any, live_server: Any, admin_user: Any
    ) -> None:
        make_case(kind="message", category="grooming")
        login(page, live_server, "admin1")
        page.goto(f"{live_server.url}/compliance/")
        expect(page.get_by_role("heading", name="Coverage: which principles")).to_be_visible()
        expect(page.get_by_text("gap").first).to_be_visible()
        page.get_by_role("link", name="Combat online grooming and preparatory activity").click()
        page.wait_for_url("**/compliance/principles/3/")
        chart = page.locator("svg.chart").first
        chart.wait_for(state="visible")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 30
        screenshot(page, "compliance-principle")
        page.goto(f"{live_server.url}/compliance/operations/")
        assert page.locator("svg.chart").count() >= 3
        screenshot(page, "operations")
