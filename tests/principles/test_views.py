from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.conftest import client_for


@pytest.mark.django_db
class PrincipleViewTests:
    def test_the_page_lists_twelve_principles_with_provenance_and_source(
        self, moderator: Any
    ) -> None:
        response = client_for(moderator).get("/principles/")
        assert response.status_code == 200
        html = response.content.decode()
        assert html.count('href="/principles/') >= 12
        assert "checked against the Voluntary Principles (2020)" in html
        assert "wording unverified" in html
        assert "https://www.gov.uk/" in html

    def test_a_principle_page_shows_its_categories(self, lead: Any) -> None:
        response = client_for(lead).get("/principles/3/")
        assert response.status_code == 200
        assert "Grooming" in response.content.decode()

    def test_outsiders_and_anonymous_users_are_refused(self, outsider: Any, client: Client) -> None:
        assert client_for(outsider).get("/principles/").status_code == 403
        assert client_for(outsider).get("/principles/3/").status_code == 403
        assert client.get("/principles/").status_code == 302
        assert client_for(outsider).get("/principles/99/").status_code == 403


@pytest.mark.django_db
class PrincipleApiTests:
    def test_it_returns_the_twelve_principles(self, moderator: Any) -> None:
        response = client_for(moderator).get("/api/v1/principles")
        assert response.status_code == 200
        body = response.json()
        assert [p["number"] for p in body] == list(range(1, 13))
        assert set(body[0]) == {
            "number",
            "theme",
            "title",
            "text",
            "source",
            "source_title",
            "provenance",
            "checked",
        }

    def test_outsiders_get_403_and_anonymous_401(self, outsider: Any, client: Client) -> None:
        assert client_for(outsider).get("/api/v1/principles").status_code == 403
        assert client.get("/api/v1/principles").status_code in (401, 403)
