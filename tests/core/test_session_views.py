"""Logging in again after the session expired, the keep-alive endpoint, and what base.html
tells static/js/session.js and drafts.js."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from core.views import SESSION_EXPIRED_MESSAGE, SESSION_RESUMED_MESSAGE
from tests.conftest import PASSWORD, client_for
from tests.moderation.factories import make_claimed_image_case


@pytest.mark.django_db
class ExpiredLoginTests:
    def test_the_login_page_says_the_session_expired_and_keeps_next(self, client: Client) -> None:
        html = client.get("/login/?next=/cases/7/&expired=1").content.decode()
        assert SESSION_EXPIRED_MESSAGE in html
        assert 'name="next" value="/cases/7/"' in html
        assert 'name="expired" value="1"' in html

    def test_an_ordinary_login_page_says_nothing_about_expiry(self, client: Client) -> None:
        html = client.get("/login/?next=/cases/7/").content.decode()
        assert "session expired" not in html

    def test_after_logging_in_the_case_page_opens_and_says_why(
        self, moderator: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = False  # 2FA has its own tests
        case, _ = make_claimed_image_case(moderator)
        client = client_for(moderator)
        Session.objects.all().delete()
        expired = client.post(
            f"/cases/{case.pk}/decide", HTTP_REFERER=f"http://testserver/cases/{case.pk}/"
        )
        login_page = client.get(expired["Location"])
        assert SESSION_EXPIRED_MESSAGE in login_page.content.decode()

        response = client.post(
            "/login/",
            {
                "username": "mod1",
                "password": PASSWORD,
                "next": f"/cases/{case.pk}/",
                "expired": "1",
            },
        )
        assert response.status_code == 302 and response["Location"] == f"/cases/{case.pk}/"
        html = client.get(response["Location"]).content.decode()
        assert SESSION_RESUMED_MESSAGE in html
        assert 'data-draft-key="decision-case-' in html

    def test_next_still_refuses_other_sites(self, moderator: Any, settings: Any) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = False
        response = Client().post(
            "/login/",
            {
                "username": "mod1",
                "password": PASSWORD,
                "next": "https://evil.example/",
                "expired": "1",
            },
        )
        assert response.status_code == 302 and response["Location"] == "/"

    def test_leads_pass_their_second_factor_on_the_way_back(self, lead: Any) -> None:
        response = Client().post(
            "/login/",
            {"username": "lead1", "password": PASSWORD, "next": "/escalations/", "expired": "1"},
            follow=True,
        )
        assert response.redirect_chain[-1][0] == "/account/2fa/?next=%2Fescalations%2F"


@pytest.mark.django_db
class KeepAliveTests:
    def test_it_answers_people_with_a_role_and_pushes_the_expiry(
        self, moderator: Any, lead: Any, admin_user: Any
    ) -> None:
        for user in (moderator, lead, admin_user):
            client = client_for(user)
            session = Session.objects.get(session_key=client.session.session_key)
            response = client.post("/account/keep-alive")
            assert response.status_code == 200
            assert response.json() == {"idle_timeout": 30 * 60}
            assert "no-cache" in response["Cache-Control"]
            again = Session.objects.get(session_key=client.session.session_key)
            assert again.expire_date >= session.expire_date

    def test_an_outsider_is_refused(self, outsider: Any) -> None:
        assert client_for(outsider).post("/account/keep-alive").status_code == 403

    def test_it_is_post_only(self, moderator: Any) -> None:
        assert client_for(moderator).get("/account/keep-alive").status_code == 405

    def test_without_a_session_it_goes_to_the_login_page(self, client: Client) -> None:
        response = client.post("/account/keep-alive")
        assert response.status_code == 302 and response["Location"].startswith("/login/")

    def test_it_needs_the_csrf_token(self, moderator: Any, settings: Any) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = False
        client = Client(enforce_csrf_checks=True)
        client.force_login(moderator)
        assert client.post("/account/keep-alive").status_code == 403


@pytest.mark.django_db
class PageScriptsTests:
    def test_console_pages_carry_the_idle_timeout_and_the_scripts(
        self, moderator: Any, settings: Any
    ) -> None:
        settings.SESSION_COOKIE_AGE = 600
        html = client_for(moderator).get("/").content.decode()
        assert 'data-session-timeout="600"' in html
        assert 'data-keep-alive-url="/account/keep-alive"' in html
        assert f'data-user="{moderator.pk}"' in html
        assert "js/session.js" in html and "js/drafts.js" in html
        assert "data-drafts-clear" in html

    def test_the_login_page_and_people_without_a_role_get_neither(
        self, client: Client, outsider: Any
    ) -> None:
        for html in (
            client.get("/login/").content.decode(),
            client_for(outsider).get("/").content.decode(),
        ):
            assert "data-session-timeout" not in html and "js/session.js" not in html

    def test_the_second_factor_page_has_no_keep_alive(self, lead: Any) -> None:
        html = client_for(lead, second_factor=False).get("/account/2fa/").content.decode()
        assert "data-session-timeout" not in html
