"""Second-factor enrolment links (core.enrolment): a lead or admin binds an authenticator only
with an admin-issued, one-time, expiring link — never with a password alone (#20 probe)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.audit import SystemActor
from core.enrolment import EnrolmentRefused, enrolment_link_issue
from core.models import AuditEvent, EnrolmentLink
from tests.conftest import PASSWORD, client_for

ADMIN = SystemActor("test admin")


def _logged_in(username: str) -> Client:
    client = Client()
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def _code(user: Any) -> str:
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


@pytest.mark.django_db
class EnrolmentLinkTests:
    def test_a_password_alone_cannot_bind_an_authenticator_to_a_lead(self, lead: Any) -> None:
        client = _logged_in("lead1")
        for method in ("get", "post"):
            response = getattr(client, method)("/account/2fa/", {"token": "123456"})
            assert response.status_code == 403
            assert "enrolment link" in response.content.decode()
        assert not TOTPDevice.objects.filter(user=lead).exists()  # no secret was even made

    def test_an_admin_issues_a_link_the_lead_redeems_it_and_enrols_once(
        self, lead: Any, admin_user: Any
    ) -> None:
        admin = client_for(admin_user)
        assert "Issue an enrolment link" in admin.get("/people/lead1/").content.decode()
        page = admin.post("/people/lead1/enrolment-link")
        assert page.status_code == 200 and "shown only now" in page.content.decode()
        url = re.search(r'value="(http[^"]+/account/2fa/enrol/[^"]+)"', page.content.decode())
        assert url is not None
        path = url.group(1).split("testserver", 1)[1]
        issued = AuditEvent.objects.get(verb="person.enrolment_link_issued")
        assert issued.actor_id == admin_user.pk and issued.object_id == str(lead.pk)
        assert path.rsplit("/", 1)[1] not in str(issued.data)  # the token is not logged
        assert path not in admin.get("/people/lead1/").content.decode()

        client = _logged_in("lead1")
        confirm = client.get(path)  # a link scanner's GET spends nothing
        assert confirm.status_code == 200 and "Set up my authenticator" in confirm.content.decode()
        assert EnrolmentLink.objects.get().redeemed_at is None
        assert client.post(path).status_code == 302
        assert AuditEvent.objects.filter(verb="two_factor.enrolment_link_used").exists()
        setup = client.get("/account/2fa/")
        assert setup.status_code == 200 and "<svg" in setup.content.decode()
        response = client.post("/account/2fa/", {"token": _code(lead)})
        assert len(re.findall(r"<li>([0-9a-f]{10})</li>", response.content.decode())) == 10
        assert TOTPDevice.objects.get(user=lead).confirmed
        assert EnrolmentLink.objects.get().enrolled_at is not None

        again = client.post(path)
        assert again.status_code == 404 and "already used" in again.content.decode()

    def test_the_grant_belongs_to_the_session_that_redeemed_it(self, lead: Any) -> None:
        _, token = enrolment_link_issue(actor=ADMIN, person=lead)
        owner = _logged_in("lead1")
        owner.post(f"/account/2fa/enrol/{token}")
        intruder = _logged_in("lead1")  # someone else holding only the password
        assert intruder.get("/account/2fa/").status_code == 403
        assert owner.get("/account/2fa/").status_code == 200

    @pytest.mark.parametrize("case", ["expired", "replaced", "someone_else", "unknown"])
    def test_a_link_that_cannot_be_used_says_why(
        self, case: str, lead: Any, admin_user: Any
    ) -> None:
        _, token = enrolment_link_issue(actor=ADMIN, person=lead)
        username, expected = "lead1", ""
        if case == "expired":
            EnrolmentLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
            expected = "expired"
        elif case == "replaced":
            enrolment_link_issue(actor=ADMIN, person=lead)
            expected = "replaced by a newer one"
        elif case == "someone_else":
            username, expected = admin_user.username, "not valid for your account"
        else:
            token, expected = "not-a-token", "not valid for your account"
        client = _logged_in(username)
        for method in ("get", "post"):
            response = getattr(client, method)(f"/account/2fa/enrol/{token}")
            assert response.status_code == 404 and expected in response.content.decode()
        assert client.get("/account/2fa/").status_code == 403
        assert not AuditEvent.objects.filter(verb="two_factor.enrolment_link_used").exists()

    def test_issuing_is_refused_to_oneself_for_the_enrolled_and_the_deactivated(
        self, lead: Any, admin_user: Any
    ) -> None:
        with pytest.raises(EnrolmentRefused, match="yourself"):
            enrolment_link_issue(actor=admin_user, person=admin_user)
        TOTPDevice.objects.create(user=lead, name="authenticator", confirmed=True)
        with pytest.raises(EnrolmentRefused, match="already has an authenticator"):
            enrolment_link_issue(actor=admin_user, person=lead)
        response = client_for(admin_user).post("/people/lead1/enrolment-link", follow=True)
        assert "already has an authenticator" in response.content.decode()
        TOTPDevice.objects.all().delete()
        lead.is_active = False
        lead.save()
        with pytest.raises(EnrolmentRefused, match="deactivated"):
            enrolment_link_issue(actor=admin_user, person=lead)
        assert not EnrolmentLink.objects.exists()

    def test_moderators_and_a_disabled_setting_need_no_link(
        self, moderator: Any, lead: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = True
        assert _logged_in(moderator.username).get("/account/2fa/").status_code == 200
        settings.SAFEGUARD_2FA_ENROLMENT_LINKS = False
        assert _logged_in("lead1").get("/account/2fa/").status_code == 200


@pytest.mark.django_db
class EnrolmentLinkCommandTests:
    def test_the_first_admin_gets_a_link_from_the_command_line(
        self, admin_user: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        call_command("enrolment_link", admin_user.username)
        url = capsys.readouterr().out.strip()
        assert "/account/2fa/enrol/" in url
        event = AuditEvent.objects.get(verb="person.enrolment_link_issued")
        assert event.actor_label == "manage.py enrolment_link"
        client = _logged_in(admin_user.username)
        assert client.post("/account" + url.split("/account", 1)[1]).status_code == 302
        assert client.get("/account/2fa/").status_code == 200

    def test_unknown_people_and_bad_hours_are_refused(self, admin_user: Any) -> None:
        with pytest.raises(CommandError, match="No person called"):
            call_command("enrolment_link", "nobody")
        with pytest.raises(CommandError, match="at least 1"):
            call_command("enrolment_link", admin_user.username, "--hours", "0")
