"""People: the console's users, as admins manage them — invite, change role, deactivate and
reactivate, reset two-factor authentication — and the invitee's first password.

A person's role is their membership of exactly one role group (`core.roles`). Rules that keep
the console governable: an admin cannot remove their own Admin role, deactivate themselves or
reset their own second factor, and no change may leave zero active admins. Every change writes
an audit event in the same transaction; no password, link or token reaches the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import audit_record
from .errors import Conflict, DomainError
from .models import ApiToken
from .roles import ADMIN, ROLE_NAMES
from .tokens import api_token_revoke

logger = logging.getLogger(__name__)
User = get_user_model()

REASON_MAX_LENGTH = 500


class PeopleError(DomainError):
    """A refused change to a person, naming the form field; nothing saved."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


@dataclass(frozen=True)
class Invitation:
    """A new person's one-time set-password link: shown once to the admin, and emailed."""

    person: Any
    link: str
    emailed: bool


def people_list(*, query: str = "") -> QuerySet:
    """Console users (platform service accounts are not people), each with `role_groups`
    (their role groups) and `two_factor_enrolled`; active people first."""
    people = (
        User.objects.exclude(api_tokens__scope=ApiToken.Scope.PLATFORM)
        .annotate(
            two_factor_enrolled=Exists(
                TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
            )
        )
        .prefetch_related(
            Prefetch(
                "groups",
                queryset=Group.objects.filter(name__in=ROLE_NAMES).order_by("name"),
                to_attr="role_groups",
            )
        )
        .order_by("-is_active", "username")
    )
    if query:
        people = people.filter(
            Q(username__icontains=query)
            | Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
        )
    return people


def person_roles(person: AbstractBaseUser) -> set[str]:
    """The role groups a person is in, read fresh (not the per-request cache of core.roles)."""
    return set(person.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))


def two_factor_enrolled(person: AbstractBaseUser) -> bool:
    return TOTPDevice.objects.filter(user=person, confirmed=True).exists()


def invitation_person(*, uidb64: str, token: str) -> Any | None:
    """The person a set-password link is for, or None when the link is wrong, expired or used.

    Django's password-reset tokens hash the password, so a link stops working once the
    password is set, or when a new link is issued (which renews the unusable password).
    Only people who have never set a password, and are active, can use one.
    """
    try:
        person = User.objects.get(pk=force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError, ValidationError, User.DoesNotExist):
        return None
    if not person.is_active or person.has_usable_password():
        return None
    if not default_token_generator.check_token(person, token):
        return None
    return person


def _invitation_link(person: AbstractBaseUser) -> str:
    path = reverse(
        "core:set_password",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(person.pk)),
            "token": default_token_generator.make_token(person),
        },
    )
    return settings.SITE_URL + path


def _email_invitation(person: Any, link: str) -> bool:
    """Email the link; False if it could not be sent (the admin still has it on screen).
    Called after commit: no network I/O inside a transaction."""
    days = max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)
    body = (
        f"Hello {person.get_full_name() or person.get_username()},\n\n"
        f"You have been given access to Safeguard as {person.get_username()}.\n"
        f"Set your password here (the link works once, for {days} days):\n\n{link}\n\n"
        "After your first login you may be asked to set up two-factor authentication.\n"
    )
    try:
        send_mail("Your Safeguard account", body, settings.DEFAULT_FROM_EMAIL, [person.email])
    except Exception as exc:  # noqa: BLE001 — reported to the admin, who has the link
        logger.warning("Invitation email to user %s failed: %s", person.pk, exc)
        return False
    return True


def _check_role(role: str) -> None:
    if role not in ROLE_NAMES:
        raise PeopleError("role", f"Choose one role: {', '.join(ROLE_NAMES)}.")


def person_invite(
    *,
    actor: AbstractBaseUser,
    username: str,
    email: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
) -> Invitation:
    """Create a person with a role and no usable password; return their one-time
    set-password link (also emailed to them)."""
    username = username.strip()
    email = email.strip()
    _check_role(role)
    if not username:
        raise PeopleError("username", "Give the person a username.")
    try:
        User.username_validator(username)
    except ValidationError:
        raise PeopleError(
            "username", "A username has letters, digits and @ . + - _ only."
        ) from None
    if len(username) > 150:
        raise PeopleError("username", "A username has at most 150 characters.")
    try:
        validate_email(email)
    except ValidationError:
        raise PeopleError("email", "Give a valid email address: the link is sent there.") from None
    if User.objects.filter(username__iexact=username).exists():
        raise PeopleError("username", f"The username {username!r} is taken.")
    if User.objects.filter(email__iexact=email).exists():
        raise PeopleError("email", f"Someone already has the address {email}.")
    try:
        with transaction.atomic():
            person = User(
                username=username,
                email=email,
                first_name=first_name.strip()[:150],
                last_name=last_name.strip()[:150],
                is_staff=role == ADMIN,  # the Django admin site needs is_staff
            )
            person.set_unusable_password()
            person.save()
            person.groups.add(Group.objects.get(name=role))
            audit_record(
                actor=actor,
                verb="person.invited",
                obj=person,
                data={"username": username, "email": email, "role": role},
            )
    except IntegrityError:
        raise Conflict(f"The username {username!r} is taken.") from None
    link = _invitation_link(person)
    return Invitation(person=person, link=link, emailed=_email_invitation(person, link))


def person_invitation_renew(*, actor: AbstractBaseUser, person: Any) -> Invitation:
    """A new set-password link for someone who has not set a password yet; the old link
    stops working (its token hashed the unusable password this replaces)."""
    with transaction.atomic():
        person = User.objects.select_for_update().get(pk=person.pk)
        if person.has_usable_password():
            raise PeopleError("person", f"{person.get_username()} has already set a password.")
        if not person.is_active:
            raise PeopleError("person", f"{person.get_username()} is deactivated.")
        person.set_unusable_password()
        person.save(update_fields=["password"])
        audit_record(actor=actor, verb="person.invitation_renewed", obj=person, data={})
    link = _invitation_link(person)
    return Invitation(person=person, link=link, emailed=_email_invitation(person, link))


def person_accept_invitation(*, person: Any, password: str) -> None:
    """The invitee sets their first password (the link is then used up)."""
    try:
        password_validation.validate_password(password, person)
    except ValidationError as exc:
        raise PeopleError("new_password1", " ".join(exc.messages)) from None
    with transaction.atomic():
        person = User.objects.select_for_update().get(pk=person.pk)
        if person.has_usable_password():
            raise Conflict("This link was already used.")
        person.set_password(password)
        person.save(update_fields=["password"])
        audit_record(actor=person, verb="person.password_set", obj=person, data={})


def _lock_admins() -> None:
    """Serialise every change to who is an active admin.

    Two admins demoting (or deactivating) each other at the same moment would each count two
    admins and both proceed, leaving none. Every such change first locks the Admin group's
    row; the count it then reads sees any change committed before it got the lock.
    """
    Group.objects.select_for_update().get(name=ADMIN)


def _active_admins() -> int:
    return User.objects.filter(is_active=True, groups__name=ADMIN).count()


def _locked(person: Any) -> Any:
    return User.objects.select_for_update().get(pk=person.pk)


def person_change_role(*, actor: AbstractBaseUser, person: Any, role: str) -> bool:
    """Give a person exactly one role; False if that was already their only role."""
    _check_role(role)
    with transaction.atomic():
        _lock_admins()
        person = _locked(person)
        current = person_roles(person)
        if current == {role}:
            return False
        if ADMIN in current and role != ADMIN:
            if person.pk == actor.pk:
                raise PeopleError(
                    "role", "You cannot remove your own Admin role; ask another admin."
                )
            if person.is_active and _active_admins() <= 1:
                raise PeopleError(
                    "role", f"{person.get_username()} is the last active admin; make another."
                )
        person.groups.remove(*Group.objects.filter(name__in=ROLE_NAMES).exclude(name=role))
        person.groups.add(Group.objects.get(name=role))
        person.is_staff = role == ADMIN or person.is_superuser
        person.save(update_fields=["is_staff"])
        audit_record(
            actor=actor,
            verb="person.role_changed",
            obj=person,
            data={"from": sorted(current), "to": role},
        )
    return True


def _end_sessions(person: Any) -> int:
    """Delete the person's console sessions; returns how many ended.

    Sessions are stored by key, not by user, so each live one is decoded to find whose it
    is: fine for a console's few dozen staff. Only database-backed session engines can be
    searched; with any engine, a deactivated person is logged out on their next request
    anyway (Django refuses inactive users' sessions).
    """
    engine = import_module(settings.SESSION_ENGINE)
    get_model = getattr(engine.SessionStore, "get_model_class", None)
    if get_model is None:
        return 0
    ended = 0
    store = engine.SessionStore()
    for session in get_model().objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get(SESSION_KEY) == str(person.pk):
            store.delete(session.session_key)
            ended += 1
    return ended


def person_deactivate(*, actor: AbstractBaseUser, person: Any) -> int:
    """Stop a person from logging in: end their sessions and revoke the API tokens that act
    as them. Returns how many sessions ended."""
    if person.pk == actor.pk:
        raise PeopleError("person", "You cannot deactivate yourself; ask another admin.")
    with transaction.atomic():
        _lock_admins()
        person = _locked(person)
        if not person.is_active:
            raise Conflict(f"{person.get_username()} is already deactivated.")
        if ADMIN in person_roles(person) and _active_admins() <= 1:
            raise PeopleError(
                "person", f"{person.get_username()} is the last active admin; make another."
            )
        person.is_active = False
        person.save(update_fields=["is_active"])
        tokens = list(ApiToken.objects.filter(user=person, revoked_at__isnull=True))
        for token in tokens:
            api_token_revoke(token=token, actor=actor)
        ended = _end_sessions(person)
        audit_record(
            actor=actor,
            verb="person.deactivated",
            obj=person,
            data={"sessions_ended": ended, "tokens_revoked": [t.name for t in tokens]},
        )
    return ended


def person_reactivate(*, actor: AbstractBaseUser, person: Any) -> None:
    """Let a deactivated person log in again (with their role; revoked tokens stay revoked)."""
    with transaction.atomic():
        _lock_admins()
        person = _locked(person)
        if person.is_active:
            raise Conflict(f"{person.get_username()} is already active.")
        person.is_active = True
        person.save(update_fields=["is_active"])
        audit_record(actor=actor, verb="person.reactivated", obj=person, data={})


def person_reset_two_factor(*, actor: AbstractBaseUser, person: Any, reason: str) -> int:
    """Remove a person's authenticator and recovery codes and end their sessions, so their
    next login must enrol a new device. Returns how many devices were removed.

    Sessions end too: a session that outlived the reset could otherwise enrol a device of its
    own without the password being asked again.
    """
    reason = reason.strip()
    if not reason:
        raise PeopleError("reason", "Say why (e.g. how you confirmed who asked for it).")
    if len(reason) > REASON_MAX_LENGTH:
        raise PeopleError("reason", f"Keep the reason under {REASON_MAX_LENGTH} characters.")
    if person.pk == actor.pk:
        raise PeopleError(
            "reason", "You cannot reset your own two-factor authentication; ask another admin."
        )
    with transaction.atomic():
        person = _locked(person)
        totp = TOTPDevice.objects.filter(user=person)
        static = StaticDevice.objects.filter(user=person)
        devices = totp.count() + static.count()
        if not devices:
            raise Conflict(f"{person.get_username()} has no second factor to reset.")
        totp.delete()
        static.delete()  # its recovery codes (StaticToken) go with it
        ended = _end_sessions(person)
        audit_record(
            actor=actor,
            verb="person.two_factor_reset",
            obj=person,
            data={"reason": reason, "devices_removed": devices, "sessions_ended": ended},
        )
    return devices
