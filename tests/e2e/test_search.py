"""Search in the browser: the box in the top bar finds a case, the search is saved, opened again
from the queue page and deleted; the search page passes axe on a desktop and a phone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from moderation.models import SavedFilter
from tests.e2e.conftest import login, screenshot
from tests.e2e.test_accessibility import _axe_findings
from tests.moderation.search_helpers import submit_case

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


class SearchFlowTests:
    def test_search_from_the_top_bar_then_save_open_and_delete_the_search(
        self, page: Any, live_server: Any, moderator: Any
    ) -> None:
        wanted = submit_case(text="meet at the harbour", subject_username="river_fox")
        other = submit_case(text="nothing to see")
        login(page, live_server, "mod1")

        page.get_by_role("searchbox", name="Search cases").fill("harbour")
        page.get_by_role("searchbox", name="Search cases").press("Enter")
        page.wait_for_url("**/search/?q=harbour")
        results = page.get_by_role("table")
        expect(results.get_by_role("link", name=wanted.reference)).to_be_visible()
        expect(results.get_by_text("item text")).to_be_visible()
        expect(results.get_by_role("link", name=other.reference)).to_have_count(0)
        screenshot(page, "search-results")

        page.get_by_label("Save the current filters as").fill("Harbour")
        page.get_by_role("button", name="Save filter").click()
        page.wait_for_url("**/search/?q=harbour")
        assert SavedFilter.objects.get(user=moderator).params == {"q": "harbour"}

        page.goto(f"{live_server.url}/queue/")
        screenshot(page, "queue-saved-filters")
        page.get_by_role("link", name="Harbour", exact=True).click()
        page.wait_for_url("**/search/?q=harbour")
        expect(page.get_by_role("link", name=wanted.reference)).to_be_visible()

        page.get_by_role("button", name="Delete saved filter Harbour").click()
        expect(page.get_by_text("Deleted saved filter")).to_be_visible()
        assert not SavedFilter.objects.exists()

    def test_the_search_page_has_no_axe_violations(
        self, page: Any, live_server: Any, moderator: Any
    ) -> None:
        submit_case(text="meet at the harbour")
        login(page, live_server, "mod1")
        findings = []
        for width in (1440, 390):
            page.set_viewport_size({"width": width, "height": 900})
            for path in ("/search/?q=harbour&hash=abc", "/search/?q=harbour"):
                page.goto(f"{live_server.url}{path}")
                findings += [f"{width} {path} {f}" for f in _axe_findings(page)]
                if width == 1440 and "hash=abc" in path:
                    screenshot(page, "search-field-errors")
        screenshot(page, "search-phone")
        assert findings == [], "\n".join(findings)
