"""The live fragments static/js/live.js polls: the escalations board and a lead's home panels."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.services.escalations import case_mark_immediate_risk
from tests.conftest import client_for
from tests.moderation.factories import make_case, record_999_call


@pytest.mark.django_db
class BoardLiveTests:
    def test_the_fragment_is_the_boards_table_with_urgent_rows_marked(
        self, moderator: Any, lead: Any
    ) -> None:
        case = make_case(kind="message")
        escalation = case_mark_immediate_risk(case=case, actor=moderator, reason="threat")
        response = client_for(lead).get("/escalations/live")
        html = response.content.decode()
        assert response.status_code == 200
        assert "no-cache" in response["Cache-Control"]
        assert "<html" not in html and "<table>" in html and "{#" not in html
        assert f'data-live-urgent="escalation-{escalation.pk}"' in html
        assert case.reference in html

    def test_the_board_page_polls_its_fragment(self, lead: Any) -> None:
        html = client_for(lead).get("/escalations/").content.decode()
        assert 'data-live-url="/escalations/live"' in html
        assert 'aria-live="assertive"' in html and "js/live.js" in html
        assert "No open escalations." in html

    def test_moderators_and_outsiders_are_refused(self, moderator: Any, outsider: Any) -> None:
        for user in (moderator, outsider):
            assert client_for(user).get("/escalations/live").status_code == 403


@pytest.mark.django_db
class HomeLiveTests:
    def test_the_fragment_holds_the_immediate_risk_panel_and_the_count(
        self, moderator: Any, lead: Any
    ) -> None:
        client = client_for(lead)
        quiet = client.get("/home/live").content.decode()
        assert "Child at immediate risk" not in quiet
        assert '<span class="stat">0</span> open' in quiet

        case = make_case(kind="message")
        escalation = case_mark_immediate_risk(case=case, actor=moderator, reason="threat")
        html = client.get("/home/live").content.decode()
        assert "call 999 now" in html and "<html" not in html and "{#" not in html
        assert f'data-live-urgent="case-{case.pk}"' in html
        assert '<span class="stat">1</span> open' in html

        record_999_call(escalation, lead)
        assert "999 called, follow up" in client.get("/home/live").content.decode()

    def test_a_leads_home_polls_it_and_a_moderators_does_not(
        self, moderator: Any, lead: Any
    ) -> None:
        html = client_for(lead).get("/").content.decode()
        assert 'data-live-url="/home/live"' in html and "js/live.js" in html
        html = client_for(moderator).get("/").content.decode()
        assert "data-live-url" not in html and "js/live.js" not in html

    def test_moderators_and_outsiders_are_refused(self, moderator: Any, outsider: Any) -> None:
        for user in (moderator, outsider):
            assert client_for(user).get("/home/live").status_code == 403
