from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.audit import SystemActor
from core.models import AuditEvent
from core.people import person_roles
from core.roles import ADMIN, MODERATOR, SAFETY_LEAD
from core.tokens import api_token_create
from tests.conftest import PASSWORD, client_for

User = get_user_model()
NEW_PASSWORD = "a-long-new-passphrase-42"


def _link_in(html: str) -> str:
    match = re.search(r'value="(http[^"]*/account/set-password/[^"]+)"', html)
    assert match, "no set-password link on the page"
    return urlsplit(match.group(1)).path


def _login(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post("/login/", {"username": username, "password": password})


def _messages(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


@pytest.mark.django_db
class PeoplePageTests:
    def test_admins_see_everyone_with_role_two_factor_and_last_login(
        self, admin_user: Any, lead: Any, moderator: Any
    ) -> None:
        api_token_create(name="acme", actor=SystemActor("test"))
        TOTPDevice.objects.create(user=lead, name="authenticator", confirmed=True)
        html = client_for(admin_user).get("/people/").content.decode()
        for text in ("lead1", "mod1", "Safety lead", "Moderator", "enrolled", "not enrolled"):
            assert text in html
        assert "platform-acme" not in html  # a platform's service account is not a person
        assert 'href="/people/"' in html and 'href="/tokens/"' in html  # the nav links

    def test_others_get_403_and_no_nav_link(self, lead: Any, moderator: Any) -> None:
        for user in (lead, moderator):
            client = client_for(user)
            assert client.get("/people/").status_code == 403
            assert client.get("/people/mod1/").status_code == 403
            assert 'href="/people/"' not in client.get("/").content.decode()

    def test_a_platform_account_has_no_person_page(self, admin_user: Any) -> None:
        token, _ = api_token_create(name="acme", actor=SystemActor("test"))
        assert client_for(admin_user).get(f"/people/{token.user.username}/").status_code == 404

    def test_the_person_page_shows_the_audited_history(
        self, admin_user: Any, moderator: Any
    ) -> None:
        client = client_for(admin_user)
        client.post("/people/mod1/role", {"role": SAFETY_LEAD})
        html = client.get("/people/mod1/").content.decode()
        assert "person.role_changed" in html and "admin1" in html


@pytest.mark.django_db
class InvitationFlowTests:
    def test_an_invited_admin_sets_a_password_logs_in_and_must_enrol(self, admin_user: Any) -> None:
        response = client_for(admin_user).post(
            "/people/invite",
            {"username": "newadmin", "email": "new@example.org", "role": ADMIN},
        )
        assert response.status_code == 200
        assert response["Cache-Control"].startswith("max-age=0")
        html = response.content.decode()
        link = _link_in(html)
        assert "shown only now" in html and link in mail.outbox[0].body
        assert person_roles(User.objects.get(username="newadmin")) == {ADMIN}
        assert link not in client_for(admin_user).get("/people/newadmin/").content.decode()

        invitee = Client()
        response = invitee.get(link)  # the token leaves the URL for the session
        assert response.status_code == 302 and response["Location"].endswith("/set-password/")
        assert "Set your password" in invitee.get(response["Location"]).content.decode()
        response = invitee.post(
            response["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
        )
        assert response.status_code == 302 and response["Location"] == "/login/"
        assert _login(invitee, "newadmin", NEW_PASSWORD).status_code == 302
        response = invitee.get("/people/")
        assert response.status_code == 302 and "/account/2fa/" in response["Location"]
        assert "Set up two-factor authentication" in invitee.get("/account/2fa/").content.decode()

        again = Client().get(link, follow=True)  # the link worked once
        assert again.redirect_chain[-1][0] == "/login/" and "already used" in _messages(again)

    def test_a_logged_in_person_cannot_use_someone_elses_link(
        self, admin_user: Any, moderator: Any
    ) -> None:
        html = (
            client_for(admin_user)
            .post(
                "/people/invite", {"username": "x1", "email": "x1@example.org", "role": MODERATOR}
            )
            .content.decode()
        )
        response = client_for(moderator).get(_link_in(html))
        assert response.status_code == 403 and "You are logged in" in response.content.decode()

    def test_mismatched_passwords_are_shown_on_the_form(self, admin_user: Any) -> None:
        html = (
            client_for(admin_user)
            .post(
                "/people/invite", {"username": "x2", "email": "x2@example.org", "role": MODERATOR}
            )
            .content.decode()
        )
        invitee = Client()
        page = invitee.get(_link_in(html))["Location"]
        response = invitee.post(page, {"new_password1": NEW_PASSWORD, "new_password2": "other"})
        assert response.status_code == 200 and 'aria-invalid="true"' in response.content.decode()
        assert not User.objects.get(username="x2").has_usable_password()

    def test_an_invalid_invitation_form_is_shown_again_with_its_errors(
        self, admin_user: Any, moderator: Any
    ) -> None:
        response = client_for(admin_user).post(
            "/people/invite", {"username": "mod1", "email": "m@example.org", "role": MODERATOR}
        )
        assert response.status_code == 200 and "is taken" in response.content.decode()
        assert not AuditEvent.objects.filter(verb="person.invited").exists()

    def test_a_new_link_can_be_made_until_a_password_is_set(self, admin_user: Any) -> None:
        client = client_for(admin_user)
        first = _link_in(
            client.post(
                "/people/invite", {"username": "x3", "email": "x3@example.org", "role": MODERATOR}
            ).content.decode()
        )
        second = _link_in(client.post("/people/x3/invitation").content.decode())
        assert first != second
        assert Client().get(first)["Location"] == "/login/"
        assert Client().get(second)["Location"].endswith("/set-password/")


@pytest.mark.django_db
class RoleChangeTests:
    def test_an_admin_changes_a_role(self, admin_user: Any, moderator: Any) -> None:
        response = client_for(admin_user).post("/people/mod1/role", {"role": SAFETY_LEAD})
        assert response.status_code == 302 and response["Location"] == "/people/mod1/"
        assert person_roles(moderator) == {SAFETY_LEAD}
        assert AuditEvent.objects.filter(verb="person.role_changed").count() == 1

    def test_self_demotion_is_refused_with_a_message(self, admin_user: Any) -> None:
        response = client_for(admin_user).post(
            "/people/admin1/role", {"role": MODERATOR}, follow=True
        )
        assert "your own Admin role" in _messages(response)
        assert person_roles(admin_user) == {ADMIN}


@pytest.mark.django_db
class DeactivationTests:
    def test_a_deactivated_persons_session_ends_and_login_fails(
        self, admin_user: Any, moderator: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = False
        session = Client()
        assert _login(session, "mod1").status_code == 302
        assert session.get("/queue/").status_code == 200
        response = client_for(admin_user).post("/people/mod1/deactivate", {"confirm": "on"})
        assert response.status_code == 302
        response = session.get("/queue/")
        assert response.status_code == 302 and "/login/" in response["Location"]
        response = _login(Client(), "mod1")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
        assert AuditEvent.objects.filter(verb="person.deactivated").count() == 1

    def test_it_needs_the_confirmation(self, admin_user: Any, moderator: Any) -> None:
        response = client_for(admin_user).post("/people/mod1/deactivate", {}, follow=True)
        assert "Tick the box" in _messages(response)
        moderator.refresh_from_db()
        assert moderator.is_active

    def test_an_admin_cannot_deactivate_themselves(self, admin_user: Any) -> None:
        response = client_for(admin_user).post(
            "/people/admin1/deactivate", {"confirm": "on"}, follow=True
        )
        assert "yourself" in _messages(response)

    def test_reactivation_lets_them_log_in_again(
        self, admin_user: Any, moderator: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = False
        client = client_for(admin_user)
        client.post("/people/mod1/deactivate", {"confirm": "on"})
        client.post("/people/mod1/reactivate")
        assert _login(Client(), "mod1").status_code == 302
        assert AuditEvent.objects.filter(verb="person.reactivated").count() == 1


@pytest.mark.django_db
class TwoFactorResetTests:
    def test_a_reset_ends_the_session_and_the_next_login_enrols_again(
        self, admin_user: Any, lead: Any
    ) -> None:
        lead_session = client_for(lead)  # verified with a device
        assert lead_session.get("/escalations/").status_code == 200
        response = client_for(admin_user).post(
            "/people/lead1/reset-2fa",
            {"reason": "lost phone, confirmed in person", "confirm": "on"},
        )
        assert response.status_code == 302
        assert not TOTPDevice.objects.filter(user=lead).exists()
        assert "/login/" in lead_session.get("/escalations/")["Location"]

        fresh = Client()
        assert _login(fresh, "lead1").status_code == 302
        response = fresh.get("/escalations/")
        assert response.status_code == 302 and "/account/2fa/" in response["Location"]
        assert (
            "Set up two-factor authentication" in fresh.get(response["Location"]).content.decode()
        )
        [event] = AuditEvent.objects.filter(verb="person.two_factor_reset")
        assert event.data["reason"] == "lost phone, confirmed in person"

    def test_it_needs_a_reason_and_the_confirmation(self, admin_user: Any, lead: Any) -> None:
        TOTPDevice.objects.create(user=lead, name="authenticator", confirmed=True)
        client = client_for(admin_user)
        for data in ({"confirm": "on"}, {"reason": "lost phone"}):
            response = client.post("/people/lead1/reset-2fa", data, follow=True)
            assert "Give a reason" in _messages(response)
        assert TOTPDevice.objects.filter(user=lead).exists()
