from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string
from django.test import Client

from tests.conftest import PASSWORD, client_for


@pytest.mark.django_db
class LoginTests:
    def test_a_user_logs_in_and_lands_on_home(
        self, client: Client, moderator: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = False  # 2FA has its own tests (test_security)
        response = client.post("/login/", {"username": "mod1", "password": PASSWORD})
        assert response.status_code == 302 and response["Location"] == "/"
        assert client.get("/").status_code == 200

    def test_a_wrong_password_is_refused_with_a_message(
        self, client: Client, moderator: Any
    ) -> None:
        response = client.post("/login/", {"username": "mod1", "password": "wrong"})
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()

    def test_logout_ends_the_session(self, moderator: Any) -> None:
        client = client_for(moderator)
        assert client.post("/logout/").status_code == 302
        assert client.get("/").status_code == 302


@pytest.mark.django_db
class HomeTests:
    def test_moderators_see_the_queue_summary(self, moderator: Any) -> None:
        html = client_for(moderator).get("/").content.decode()
        assert "Review queue" in html and "Configuration" not in html

    def test_leads_see_the_queue_and_no_configuration(self, lead: Any) -> None:
        html = client_for(lead).get("/").content.decode()
        assert "Review queue" in html and "Hash lists" in html and "Configuration" not in html

    def test_admins_see_configuration(self, admin_user: Any) -> None:
        html = client_for(admin_user).get("/").content.decode()
        assert "Configuration" in html and "/admin/" in html

    def test_a_user_without_a_role_sees_only_a_notice(self, outsider: Any) -> None:
        html = client_for(outsider).get("/").content.decode()
        assert "no Safeguard role" in html and "Review queue" not in html

    def test_admins_reach_the_django_admin(self, admin_user: Any, moderator: Any) -> None:
        assert client_for(admin_user).get("/admin/").status_code == 200
        assert client_for(moderator).get("/admin/").status_code == 302


@pytest.mark.django_db
class ErrorPageTests:
    """Error pages carry the console's bar, viewport and footer, and say what happened."""

    @staticmethod
    def _is_branded(html: str) -> bool:
        return all(
            part in html
            for part in ('name="viewport"', 'class="topbar"', "Safeguard home", 'class="footer"')
        )

    def test_404_and_403_pages_have_the_layout(self, outsider: Any) -> None:
        client = client_for(outsider)
        missing = client.get("/no-such-page/")
        assert missing.status_code == 404 and self._is_branded(missing.content.decode())
        denied = client.get("/queue/")
        assert denied.status_code == 403
        assert self._is_branded(denied.content.decode()) and "No access" in denied.content.decode()

    def test_a_csrf_failure_explains_itself_without_losing_the_layout(self) -> None:
        client = Client(enforce_csrf_checks=True)
        response = client.post("/login/", {"username": "x", "password": "y"})
        html = response.content.decode()
        assert response.status_code == 403
        assert self._is_branded(html) and "This form has expired" in html

    def test_the_500_page_renders_without_a_request(self) -> None:
        html = render_to_string("500.html")
        assert self._is_branded(html) and "nothing you submitted was lost" in html

    def test_anonymous_api_docs_go_to_login_and_back(self) -> None:
        response = Client().get("/api/docs/")
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=/api/docs/")
