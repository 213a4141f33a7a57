"""The home page's immediate-risk panel, and the case page's 999 line: where each call stands,
with links to the case and the 999 checklist."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.services.escalations import case_mark_immediate_risk, escalation_acknowledge
from tests.conftest import client_for
from tests.moderation.factories import make_case, record_999_call


@pytest.mark.django_db
class ImmediateRiskPanelTests:
    def test_the_panel_follows_the_call_from_paging_to_called(
        self, moderator: Any, lead: Any
    ) -> None:
        case = make_case(kind="message")
        escalation = case_mark_immediate_risk(case=case, actor=moderator, reason="threat")
        client = client_for(lead)

        html = client.get("/").content.decode()
        assert "call 999 now" in html
        assert "Paging (level 1)" in html
        assert f'href="/cases/{case.pk}/"' in html
        assert f'href="/escalations/{escalation.pk}/"' in html

        escalation_acknowledge(escalation=escalation, lead=lead)
        html = client.get("/").content.decode()
        assert "Not called yet" in html and "acknowledged by lead1" in html

        record_999_call(escalation, lead)
        html = client.get("/").content.decode()
        assert "call 999 now" not in html
        assert "999 called, follow up" in html
        assert "ref CAD-1234" in html and "Kent Police" in html

        page = client.get(f"/cases/{case.pk}/").content.decode()
        assert "Call 999 now" not in page
        assert "ref CAD-1234" in page
        assert f'href="/escalations/{escalation.pk}/"' in page

    def test_the_case_page_links_leads_to_the_checklist_but_not_moderators(
        self, moderator: Any, lead: Any
    ) -> None:
        case = make_case(kind="message")
        escalation = case_mark_immediate_risk(case=case, actor=moderator, reason="threat")
        link = f'href="/escalations/{escalation.pk}/"'
        assert link in client_for(lead).get(f"/cases/{case.pk}/").content.decode()
        page = client_for(moderator).get(f"/cases/{case.pk}/").content.decode()
        assert "Call 999 now" in page and link not in page

    def test_moderators_and_outsiders_see_no_panel(self, moderator: Any, outsider: Any) -> None:
        case_mark_immediate_risk(case=make_case(kind="message"), actor=moderator, reason="x")
        for user in (moderator, outsider):
            assert "call 999 now" not in client_for(user).get("/").content.decode()
