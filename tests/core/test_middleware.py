"""The login-required middleware when a form arrives without a session: where `next` points."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.views import LoginView, LogoutView
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import resolve
from django.utils import timezone

from core.middleware import is_return_page, view_allows_get
from tests.conftest import client_for
from tests.moderation.factories import make_claimed_image_case


def _login_target(response: Any) -> tuple[str, dict[str, list[str]]]:
    assert response.status_code == 302
    parts = urlsplit(response["Location"])
    return parts.path, parse_qs(parts.query)


@pytest.mark.django_db
class ExpiredPostTests:
    def test_a_decision_without_a_session_returns_to_the_case_page(self, client: Client) -> None:
        response = client.post(
            "/cases/7/decide",
            {"rationale": "typed for a while"},
            HTTP_REFERER="http://testserver/cases/7/",
        )
        path, query = _login_target(response)
        assert path == "/login/"
        assert query == {"next": ["/cases/7/"], "expired": ["1"]}

    def test_without_a_referer_the_post_urls_parent_page_is_used(self, client: Client) -> None:
        _, query = _login_target(client.post("/cases/7/decide"))
        assert query["next"] == ["/cases/7/"]

    def test_the_referers_query_string_is_kept(self, client: Client) -> None:
        response = client.post(
            "/referrals/new", HTTP_REFERER="http://testserver/referrals/new?case=3"
        )
        _, query = _login_target(response)
        assert query["next"] == ["/referrals/new?case=3"]

    def test_a_referer_on_another_site_is_ignored(self, client: Client) -> None:
        response = client.post("/cases/7/decide", HTTP_REFERER="https://evil.example/cases/7/")
        _, query = _login_target(response)
        assert query["next"] == ["/cases/7/"]

    def test_a_post_only_referer_is_never_the_next_page(self, client: Client) -> None:
        response = client.post(
            "/escalations/4/call", HTTP_REFERER="http://testserver/escalations/4/acknowledge"
        )
        _, query = _login_target(response)
        assert query["next"] == ["/escalations/4/"]

    def test_the_login_page_is_not_a_page_to_return_to(self, client: Client) -> None:
        response = client.post("/cases/7/decide", HTTP_REFERER="http://testserver/login/")
        _, query = _login_target(response)
        assert query["next"] == ["/cases/7/"]

    def test_without_a_page_to_return_to_it_is_the_home_page(self, client: Client) -> None:
        _, query = _login_target(client.post("/cases/7/matches/3/verdict"))
        assert query["next"] == ["/"]

    def test_a_get_keeps_djangos_next_and_says_nothing_about_expiry(self, client: Client) -> None:
        _, query = _login_target(client.get("/cases/7/?tab=items"))
        assert query == {"next": ["/cases/7/?tab=items"]}


@pytest.mark.django_db
class SessionEndTests:
    def test_a_session_deleted_on_the_server_is_an_expired_session(self, moderator: Any) -> None:
        case, _ = make_claimed_image_case(moderator)
        client = client_for(moderator)
        Session.objects.all().delete()
        response = client.post(
            f"/cases/{case.pk}/decide",
            {"outcome": "no_action", "rationale": "kept"},
            HTTP_REFERER=f"http://testserver/cases/{case.pk}/",
        )
        _, query = _login_target(response)
        assert query == {"next": [f"/cases/{case.pk}/"], "expired": ["1"]}
        assert not case.decisions.exists()

    def test_a_session_past_its_idle_timeout_is_an_expired_session(self, moderator: Any) -> None:
        case, _ = make_claimed_image_case(moderator)
        client = client_for(moderator)
        Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
        _, query = _login_target(client.post(f"/cases/{case.pk}/decide"))
        assert query["expired"] == ["1"] and query["next"] == [f"/cases/{case.pk}/"]


class ReturnPageTests:
    def test_post_only_views_do_not_answer_get(self) -> None:
        assert view_allows_get(resolve("/cases/1/decide").func) is False
        assert view_allows_get(resolve("/queue/next").func) is False

    def test_pages_answer_get(self) -> None:
        assert view_allows_get(resolve("/cases/1/").func) is True
        assert view_allows_get(resolve("/referrals/new").func) is True  # GET and POST

    def test_class_based_views_say_what_they_answer(self) -> None:
        assert view_allows_get(LoginView.as_view()) is True
        assert view_allows_get(LogoutView.as_view()) is False

    def test_unknown_paths_and_the_login_pages_are_not_return_pages(self) -> None:
        assert is_return_page("/no/such/page/") is False
        assert is_return_page("/login/") is False
        assert is_return_page("/account/keep-alive") is False
        assert is_return_page("/escalations/?x=1") is True
