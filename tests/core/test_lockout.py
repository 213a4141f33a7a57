"""Login lockout (core.lockout): the per-username soft limit never blocks a correct login from a
known browser or address; an admin unlocks a person, audited."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client

from core.lockout import KNOWN_DEVICE_COOKIE, login_failures
from core.models import AuditEvent
from core.views import SOFT_LIMITED_MESSAGE
from tests.conftest import PASSWORD, client_for


def _login(client: Client, password: str = PASSWORD, username: str = "lead1") -> Any:
    return client.post("/login/", {"username": username, "password": password})


def _logged_in(response: Any) -> bool:
    return response.status_code == 302


def _guess_from_many_addresses(n: int) -> None:
    for i in range(n):
        response = _login(Client(REMOTE_ADDR=f"203.0.113.{i + 1}"), "wrong-password")
        assert response.status_code == 200


@pytest.fixture
def soft_limit(settings: Any) -> None:
    settings.SAFEGUARD_LOGIN_SOFT_LIMIT = 3


@pytest.mark.django_db
@pytest.mark.usefixtures("soft_limit")
class SoftLimitTests:
    def test_a_spread_out_attack_stops_new_places_but_not_known_ones(self, lead: Any) -> None:
        office = Client(REMOTE_ADDR="198.51.100.7")
        assert _logged_in(_login(office))  # the lead's usual address, and now a known browser
        laptop_cookie = office.cookies[KNOWN_DEVICE_COOKIE].value
        _guess_from_many_addresses(3)
        assert login_failures("lead1") == 3

        stranger = Client(REMOTE_ADDR="192.0.2.99")
        response = _login(stranger)  # even the right password, from a new place
        assert not _logged_in(response)
        assert SOFT_LIMITED_MESSAGE.split(":")[0] in response.content.decode()
        assert "_auth_user_id" not in stranger.session
        assert login_failures("lead1") == 3  # refused before the password was checked

        assert _logged_in(_login(Client(REMOTE_ADDR="198.51.100.7")))  # known address
        travelling = Client(REMOTE_ADDR="192.0.2.200")  # known browser, new network
        travelling.cookies[KNOWN_DEVICE_COOKIE] = laptop_cookie
        assert _logged_in(_login(travelling))

    def test_a_forged_known_browser_cookie_does_not_count(self, lead: Any) -> None:
        _guess_from_many_addresses(3)
        forger = Client(REMOTE_ADDR="192.0.2.5")
        forger.cookies[KNOWN_DEVICE_COOKIE] = "lead1"
        assert not _logged_in(_login(forger))

    def test_below_the_limit_a_new_place_logs_in(self, lead: Any) -> None:
        _guess_from_many_addresses(2)
        assert _logged_in(_login(Client(REMOTE_ADDR="192.0.2.99")))


@pytest.mark.django_db
class UnlockTests:
    def test_an_admin_unlocks_a_locked_out_person_audited(
        self, lead: Any, admin_user: Any, settings: Any
    ) -> None:
        address = Client(REMOTE_ADDR="198.51.100.9")
        for _ in range(settings.AXES_FAILURE_LIMIT):
            _login(address, "wrong-password")
        assert _login(address).status_code == 429 or not _logged_in(_login(address))
        admin = client_for(admin_user)
        page = admin.get("/people/lead1/").content.decode()
        assert "locked out from 1 address" in page and "Unlock logins" in page

        response = admin.post("/people/lead1/unlock", {"reason": "confirmed by phone"})
        assert response.status_code == 302
        assert not AccessAttempt.objects.filter(username="lead1").exists()
        event = AuditEvent.objects.get(verb="person.login_unlocked")
        assert event.actor_id == admin_user.pk and event.object_id == str(lead.pk)
        assert event.data["reason"] == "confirmed by phone" and event.data["failures_cleared"] >= 5
        assert _logged_in(_login(Client(REMOTE_ADDR="198.51.100.9")))
        assert "No recent failed logins" in admin.get("/people/lead1/").content.decode()

    def test_unlocking_lifts_the_soft_limit_too(
        self, lead: Any, admin_user: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_LOGIN_SOFT_LIMIT = 3
        _guess_from_many_addresses(3)
        assert not _logged_in(_login(Client(REMOTE_ADDR="192.0.2.99")))
        client_for(admin_user).post("/people/lead1/unlock")
        assert _logged_in(_login(Client(REMOTE_ADDR="192.0.2.99")))

    def test_only_admins_unlock(self, lead: Any, moderator: Any) -> None:
        assert client_for(lead).post("/people/lead1/unlock").status_code == 403
        assert client_for(moderator).post("/people/lead1/unlock").status_code == 403
        assert not AuditEvent.objects.filter(verb="person.login_unlocked").exists()
