"""The operations dashboard's assignment timings (reports.selectors.compliance `operations`,
from moderation.timings): median and p90 per priority for the cases decided in the period."""

from __future__ import annotations

from typing import Any

import pytest

from reports.selectors.compliance import operations
from tests.conftest import client_for

from .factories import decide, today


@pytest.mark.django_db
class OperationsAssignmentTimingsTests:
    def test_the_operations_figures_carry_timings_per_priority(self, moderator: Any) -> None:
        decide(moderator, "grooming")
        rows = operations(today())["assignment_timings"]
        assert [row["label"] for row in rows][-1] == "All"
        everything = rows[-1]
        assert everything["cases"] == 1
        assert everything["to_first_claim"]["n"] == 1 and everything["held"]["n"] == 1
        assert everything["to_decision"]["n"] == 1

    def test_the_dashboard_shows_the_table_to_leads(self, moderator: Any, lead: Any) -> None:
        decide(moderator, "grooming")
        response = client_for(lead).get("/compliance/operations/")
        html = response.content.decode()
        assert response.status_code == 200
        assert 'id="assignment-timings"' in html and "To first claim (median / p90)" in html
        assert '<th scope="row">All</th>' in html

    def test_a_period_without_decisions_says_so(self, lead: Any) -> None:
        html = client_for(lead).get("/compliance/operations/").content.decode()
        assert "No cases decided in this period." in html

    def test_moderators_and_outsiders_do_not_see_the_dashboard(
        self, moderator: Any, outsider: Any
    ) -> None:
        for user in (moderator, outsider):
            assert client_for(user).get("/compliance/operations/").status_code == 403
