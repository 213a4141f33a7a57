"""The "Reported user" panel of the case page: the subject details each item arrived with, for
safety leads and admins only; moderators keep seeing the account id and username."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import client_for
from tests.moderation.factories import make_case, make_reported_user_case

# The reported user's personal data, which only leads and admins may read.
PERSONAL = ("Sam Example", "sam@example.org", "7700 900123", "2001:db8::7", "sam_alt")


@pytest.mark.django_db
class ReportedUserPanelTests:
    @pytest.mark.parametrize("persona", ["lead", "admin_user"])
    def test_leads_and_admins_see_the_panel_with_every_detail(
        self, persona: str, request: pytest.FixtureRequest
    ) -> None:
        case = make_reported_user_case()
        response = client_for(request.getfixturevalue(persona)).get(f"/cases/{case.pk}/")
        html = response.content.decode()
        assert response.status_code == 200
        assert "Reported user" in html
        for value in PERSONAL:
            assert value in html
        for label in ("Display name", "Email", "Phone", "IP address", "Port", "IP seen at"):
            assert f"<dt>{label}</dt>" in html
        assert '<dt>Port</dt><dd class="mono">51234</dd>' in html
        assert "<dt>Account created</dt>" in html and "user-43, sam_alt" in html

    def test_the_panel_lists_only_the_details_present(self, lead: Any) -> None:
        case = make_reported_user_case(
            subject_display_name="",
            subject_email="",
            subject_phone="",
            subject_port=None,
            subject_linked_accounts=[],
        )
        html = client_for(lead).get(f"/cases/{case.pk}/").content.decode()
        assert "<dt>IP address</dt>" in html and "<dt>Username</dt>" in html
        for label in ("Display name", "Email", "Phone", "Port", "Linked accounts"):
            assert f"<dt>{label}</dt>" not in html

    def test_a_case_with_no_subject_details_has_no_panel(self, lead: Any) -> None:
        case = make_case(kind="text")
        case.items.update(subject_account_id="")
        html = client_for(lead).get(f"/cases/{case.pk}/").content.decode()
        assert "Reported user" not in html

    def test_a_moderator_sees_the_account_but_no_panel_and_no_details(self, moderator: Any) -> None:
        case = make_reported_user_case()
        response = client_for(moderator).get(f"/cases/{case.pk}/")
        html = response.content.decode()
        assert response.status_code == 200
        assert "sam_example" in html and "user-42" in html
        assert "Reported user" not in html and "<dt>Port</dt>" not in html
        for value in PERSONAL:
            assert value not in html
        assert response.context["reported_user"] is None

    def test_outsiders_get_403_and_restricted_cases_404(
        self, moderator: Any, outsider: Any
    ) -> None:
        case = make_reported_user_case()
        assert client_for(outsider).get(f"/cases/{case.pk}/").status_code == 403
        case.restricted = True
        case.save(update_fields=["restricted"])
        assert client_for(moderator).get(f"/cases/{case.pk}/").status_code == 404
