from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import OperationalError, connection
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.audit import SystemActor
from core.errors import Conflict
from core.models import AuditEvent
from core.people import (
    PeopleError,
    invitation_person,
    people_list,
    person_accept_invitation,
    person_change_role,
    person_deactivate,
    person_invitation_renew,
    person_invite,
    person_reactivate,
    person_reset_two_factor,
    person_roles,
)
from core.roles import ADMIN, MODERATOR, SAFETY_LEAD
from core.tokens import api_token_create
from tests.conftest import client_for

User = get_user_model()
NEW_PASSWORD = "a-long-new-passphrase-42"


def _events(verb: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb))


def _link_parts(link: str) -> tuple[str, str]:
    """(uidb64, token) of a set-password link."""
    parts = urlsplit(link).path.strip("/").split("/")
    return parts[-2], parts[-1]


def _link_person(link: str) -> Any:
    uidb64, token = _link_parts(link)
    return invitation_person(uidb64=uidb64, token=token)


def _superuser() -> Any:
    """Someone who may act on people without holding the Admin role."""
    return User.objects.create_superuser("root", "root@example.org", "unused-password-123")


def _admin(username: str) -> Any:
    user = User.objects.create_user(username, f"{username}@example.org", "unused-password-123")
    user.groups.add(Group.objects.get(name=ADMIN))
    return user


@pytest.mark.django_db
class PersonInviteTests:
    def test_it_creates_the_person_with_one_role_and_no_usable_password(
        self, admin_user: Any
    ) -> None:
        invitation = person_invite(
            actor=admin_user,
            username="newlead",
            email="newlead@example.org",
            role=SAFETY_LEAD,
            first_name="New",
            last_name="Lead",
        )
        person = invitation.person
        assert person_roles(person) == {SAFETY_LEAD}
        assert not person.has_usable_password() and not person.is_staff
        assert person.get_full_name() == "New Lead"
        [event] = _events("person.invited")
        assert event.actor_id == admin_user.pk and event.object_id == str(person.pk)
        assert event.data == {
            "username": "newlead",
            "email": "newlead@example.org",
            "role": "Safety lead",
        }

    def test_the_link_is_emailed_and_works_once(self, admin_user: Any) -> None:
        invitation = person_invite(
            actor=admin_user, username="newmod", email="newmod@example.org", role=MODERATOR
        )
        assert invitation.emailed
        [message] = mail.outbox
        assert message.to == ["newmod@example.org"] and invitation.link in message.body
        assert invitation.link.startswith(settings.SITE_URL + "/account/set-password/")
        assert _link_person(invitation.link) == invitation.person
        person_accept_invitation(person=invitation.person, password=NEW_PASSWORD)
        person = User.objects.get(pk=invitation.person.pk)
        assert person.check_password(NEW_PASSWORD)
        assert _link_person(invitation.link) is None  # used up
        [event] = _events("person.password_set")
        assert event.actor_id == person.pk

    def test_no_link_token_or_password_reaches_the_audit_log(self, admin_user: Any) -> None:
        invitation = person_invite(
            actor=admin_user, username="quiet", email="quiet@example.org", role=MODERATOR
        )
        renewed = person_invitation_renew(actor=admin_user, person=invitation.person)
        person_accept_invitation(person=invitation.person, password=NEW_PASSWORD)
        logged = json.dumps(list(AuditEvent.objects.values("data")))
        for secret in (*_link_parts(invitation.link), *_link_parts(renewed.link), NEW_PASSWORD):
            assert secret not in logged

    def test_an_admin_gets_staff_access_to_the_admin_site(self, admin_user: Any) -> None:
        invitation = person_invite(
            actor=admin_user, username="admin2", email="a2@example.org", role=ADMIN
        )
        assert invitation.person.is_staff

    def test_it_refuses_a_taken_username_or_address_a_bad_address_and_an_unknown_role(
        self, admin_user: Any, moderator: Any
    ) -> None:
        cases = [
            ({"username": "MOD1", "email": "x@example.org", "role": MODERATOR}, "username"),
            ({"username": "x", "email": "mod1@example.org", "role": MODERATOR}, "email"),
            ({"username": "x", "email": "not-an-address", "role": MODERATOR}, "email"),
            ({"username": "x y", "email": "x@example.org", "role": MODERATOR}, "username"),
            ({"username": "x", "email": "x@example.org", "role": "Superhero"}, "role"),
        ]
        for kwargs, field in cases:
            with pytest.raises(PeopleError) as refused:
                person_invite(actor=admin_user, **kwargs)
            assert refused.value.field == field
        assert not _events("person.invited")

    def test_a_failed_email_still_leaves_the_admin_the_link(
        self, admin_user: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise OSError("mail server down")

        monkeypatch.setattr("core.people.send_mail", refuse)
        invitation = person_invite(
            actor=admin_user, username="offline", email="o@example.org", role=MODERATOR
        )
        assert not invitation.emailed and invitation.link
        assert User.objects.filter(username="offline").exists()

    def test_a_new_link_replaces_the_old_one(self, admin_user: Any) -> None:
        first = person_invite(
            actor=admin_user, username="slow", email="slow@example.org", role=MODERATOR
        )
        second = person_invitation_renew(actor=admin_user, person=first.person)
        assert _link_person(first.link) is None
        assert _link_person(second.link) == first.person
        assert len(_events("person.invitation_renewed")) == 1

    def test_no_new_link_for_someone_with_a_password(self, admin_user: Any, moderator: Any) -> None:
        with pytest.raises(PeopleError, match="already set a password"):
            person_invitation_renew(actor=admin_user, person=moderator)

    def test_a_link_is_refused_for_someone_deactivated(self, admin_user: Any) -> None:
        invitation = person_invite(
            actor=admin_user, username="gone", email="gone@example.org", role=MODERATOR
        )
        person_deactivate(actor=admin_user, person=invitation.person)
        assert _link_person(invitation.link) is None

    def test_a_weak_first_password_is_refused(self, admin_user: Any) -> None:
        invitation = person_invite(
            actor=admin_user, username="weak", email="weak@example.org", role=MODERATOR
        )
        with pytest.raises(PeopleError):
            person_accept_invitation(person=invitation.person, password="password")
        assert not User.objects.get(username="weak").has_usable_password()


@pytest.mark.django_db
class PersonRoleTests:
    def test_a_person_ends_with_exactly_the_chosen_role_audited(
        self, admin_user: Any, moderator: Any
    ) -> None:
        moderator.groups.add(Group.objects.get(name=SAFETY_LEAD))  # two roles, from old times
        assert person_change_role(actor=admin_user, person=moderator, role=ADMIN)
        moderator.refresh_from_db()
        assert person_roles(moderator) == {ADMIN} and moderator.is_staff
        [event] = _events("person.role_changed")
        assert event.data == {"from": ["Moderator", "Safety lead"], "to": "Admin"}

    def test_the_same_role_again_changes_nothing(self, admin_user: Any, lead: Any) -> None:
        assert not person_change_role(actor=admin_user, person=lead, role=SAFETY_LEAD)
        assert not _events("person.role_changed")

    def test_an_admin_cannot_remove_their_own_admin_role(self, admin_user: Any) -> None:
        _admin("admin2")
        with pytest.raises(PeopleError, match="your own Admin role"):
            person_change_role(actor=admin_user, person=admin_user, role=MODERATOR)
        assert person_roles(admin_user) == {ADMIN}

    def test_the_last_active_admin_keeps_the_role(self, admin_user: Any) -> None:
        root = _superuser()
        with pytest.raises(PeopleError, match="last active admin"):
            person_change_role(actor=root, person=admin_user, role=SAFETY_LEAD)
        other = _admin("admin2")
        other.is_active = False
        other.save()  # a deactivated admin does not count
        with pytest.raises(PeopleError, match="last active admin"):
            person_change_role(actor=root, person=admin_user, role=MODERATOR)
        assert person_roles(admin_user) == {ADMIN}

    def test_another_admin_may_demote_an_admin(self, admin_user: Any) -> None:
        other = _admin("admin2")
        assert person_change_role(actor=other, person=admin_user, role=MODERATOR)
        admin_user.refresh_from_db()
        assert person_roles(admin_user) == {MODERATOR} and not admin_user.is_staff

    def test_only_the_three_roles(self, admin_user: Any, moderator: Any) -> None:
        with pytest.raises(PeopleError):
            person_change_role(actor=admin_user, person=moderator, role="")


@pytest.mark.django_db
class PersonDeactivateTests:
    def test_it_ends_sessions_revokes_tokens_and_is_audited(
        self, admin_user: Any, moderator: Any
    ) -> None:
        client_for(moderator)
        client_for(moderator)
        client_for(admin_user)
        token, _ = api_token_create(name="mod-script", actor=admin_user, user=moderator)
        assert person_deactivate(actor=admin_user, person=moderator) == 2
        moderator.refresh_from_db()
        assert not moderator.is_active
        assert _sessions_of(moderator) == 0 and _sessions_of(admin_user) == 1
        token.refresh_from_db()
        assert token.revoked_at is not None
        [event] = _events("person.deactivated")
        assert event.data == {"sessions_ended": 2, "tokens_revoked": ["mod-script"]}
        assert _events("api_token.revoked")

    def test_an_admin_cannot_deactivate_themselves(self, admin_user: Any) -> None:
        _admin("admin2")
        with pytest.raises(PeopleError, match="yourself"):
            person_deactivate(actor=admin_user, person=admin_user)

    def test_the_last_active_admin_stays_active(self, admin_user: Any) -> None:
        with pytest.raises(PeopleError, match="last active admin"):
            person_deactivate(actor=_superuser(), person=admin_user)
        admin_user.refresh_from_db()
        assert admin_user.is_active

    def test_twice_is_a_conflict_and_reactivation_is_audited(
        self, admin_user: Any, moderator: Any
    ) -> None:
        person_deactivate(actor=admin_user, person=moderator)
        with pytest.raises(Conflict):
            person_deactivate(actor=admin_user, person=moderator)
        person_reactivate(actor=admin_user, person=moderator)
        moderator.refresh_from_db()
        assert moderator.is_active and person_roles(moderator) == {MODERATOR}
        with pytest.raises(Conflict):
            person_reactivate(actor=admin_user, person=moderator)
        assert len(_events("person.reactivated")) == 1


def _sessions_of(user: Any) -> int:
    return sum(
        1 for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk)
    )


@pytest.mark.django_db
class PersonTwoFactorResetTests:
    def _enrol(self, user: Any) -> None:
        TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
        static = StaticDevice.objects.create(user=user, name="recovery", confirmed=True)
        StaticToken.objects.create(device=static, token="abcdef0123")

    def test_it_removes_devices_and_codes_ends_sessions_and_records_the_reason(
        self, admin_user: Any, lead: Any
    ) -> None:
        self._enrol(lead)
        client_for(lead)
        assert (
            person_reset_two_factor(
                actor=admin_user, person=lead, reason="lost phone; confirmed by video call"
            )
            == 2
        )
        assert not TOTPDevice.objects.filter(user=lead).exists()
        assert not StaticDevice.objects.filter(user=lead).exists()
        assert not StaticToken.objects.exists()
        assert _sessions_of(lead) == 0
        [event] = _events("person.two_factor_reset")
        assert event.data["reason"] == "lost phone; confirmed by video call"
        assert event.actor_id == admin_user.pk and event.object_id == str(lead.pk)

    def test_it_needs_a_reason(self, admin_user: Any, lead: Any) -> None:
        self._enrol(lead)
        with pytest.raises(PeopleError, match="Say why"):
            person_reset_two_factor(actor=admin_user, person=lead, reason="   ")
        assert TOTPDevice.objects.filter(user=lead).exists()

    def test_no_one_resets_their_own(self, admin_user: Any) -> None:
        self._enrol(admin_user)
        with pytest.raises(PeopleError, match="your own"):
            person_reset_two_factor(actor=admin_user, person=admin_user, reason="lost it")

    def test_nothing_to_reset_is_a_conflict(self, admin_user: Any, lead: Any) -> None:
        with pytest.raises(Conflict):
            person_reset_two_factor(actor=admin_user, person=lead, reason="lost phone")
        assert not _events("person.two_factor_reset")


@pytest.mark.django_db
class PeopleListTests:
    def test_it_lists_people_with_role_and_two_factor_but_not_platform_accounts(
        self, admin_user: Any, lead: Any, moderator: Any
    ) -> None:
        TOTPDevice.objects.create(user=lead, name="authenticator", confirmed=True)
        api_token_create(name="acme", actor=SystemActor("test"))
        people = {p.username: p for p in people_list()}
        assert set(people) == {"admin1", "lead1", "mod1"}
        assert [g.name for g in people["lead1"].role_groups] == ["Safety lead"]
        assert people["lead1"].two_factor_enrolled and not people["mod1"].two_factor_enrolled
        assert [p.username for p in people_list(query="LEAD")] == ["lead1"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class AdminLockTests:
    def test_a_demotion_waits_for_another_change_to_the_admins_instead_of_counting_stale_rows(
        self, admin_user: Any
    ) -> None:
        """Two admins demoting each other at once must not leave none: while another
        transaction changes who is an admin, a demotion waits for it (here: times out)."""
        other_admin = _admin("admin2")
        db = settings.DATABASES["default"]
        other = psycopg2.connect(
            dbname=connection.settings_dict["NAME"],
            user=db["USER"],
            host=db["HOST"],
            port=db["PORT"],
            password=db["PASSWORD"],
        )
        try:
            with other.cursor() as cur:  # admin2 is demoting admin1, not yet committed
                cur.execute("SELECT id FROM auth_group WHERE name = %s FOR UPDATE", [ADMIN])
                cur.execute("DELETE FROM auth_user_groups WHERE user_id = %s", [admin_user.pk])
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '1s'")  # a wait fails, it does not hang
            with pytest.raises(OperationalError):
                person_change_role(actor=admin_user, person=other_admin, role=MODERATOR)
        finally:
            other.rollback()
            other.close()
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        assert person_roles(other_admin) == {ADMIN}
