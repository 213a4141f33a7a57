"""Second-factor enrolment links: a lead or admin binds an authenticator to their account only
with an admin's say-so, not with a password alone (probe finding, #20).

1. An admin issues a one-time link for a person (`enrolment_link_issue`, audited); the link is
   shown once, and any earlier unused link of theirs stops working. Accepting an invitation
   counts as such a link (the invitation was admin-issued, one-time and expiring).
2. The person, logged in with their password, opens it and confirms (`enrolment_link_redeem`,
   audited): that session — and only that session — may enrol a device, once.
3. Enrolling consumes the grant (`enrolment_grant_consume`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import Actor, audit_record
from .errors import DomainError
from .models import EnrolmentLink
from .roles import is_admin, is_lead

SESSION_KEY = "safeguard_enrolment_grant"


class EnrolmentRefused(DomainError):
    """An enrolment link that can't be used: the message says why and what to do."""

    field = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def enrolment_needs_link(user: Any) -> bool:
    """Whether this person may enrol a second factor only through an enrolment link."""
    if not settings.SAFEGUARD_2FA_ENROLMENT_LINKS:
        return False
    return bool(user.is_superuser or user.is_staff or is_lead(user) or is_admin(user))


def enrolment_link_issue(
    *, actor: Actor, person: Any, hours: int | None = None
) -> tuple[EnrolmentLink, str]:
    """A new one-time enrolment link for `person`: (its row, the token to put in the URL).

    Refused for oneself (another admin must vouch), for a deactivated person, and for someone
    who already has a confirmed authenticator (reset it first). Earlier unused links go.
    """
    if getattr(actor, "pk", None) == person.pk:
        raise EnrolmentRefused("You cannot issue an enrolment link to yourself; ask another admin.")
    if not person.is_active:
        raise EnrolmentRefused(f"{person.get_username()} is deactivated.")
    if TOTPDevice.objects.filter(user=person, confirmed=True).exists():
        raise EnrolmentRefused(
            f"{person.get_username()} already has an authenticator: reset it first if they lost it."
        )
    hours = hours or settings.SAFEGUARD_2FA_ENROLMENT_LINK_HOURS
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        revoked = EnrolmentLink.objects.filter(
            user=person, redeemed_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        link = EnrolmentLink.objects.create(
            user=person,
            token_hash=_hash(token),
            created_by=actor if getattr(actor, "pk", None) else None,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        audit_record(
            actor=actor,
            verb="person.enrolment_link_issued",
            obj=person,
            data={
                "link": link.pk,
                "expires_at": link.expires_at.isoformat(),
                "earlier_links_revoked": revoked,
            },
        )
    return link, token


def enrolment_link_check(*, user: Any, token: str) -> EnrolmentLink:
    """The live link `token` names for `user`, or EnrolmentRefused saying why not."""
    link = EnrolmentLink.objects.filter(token_hash=_hash(token or "")).first()
    if link is None or link.user_id != user.pk:
        raise EnrolmentRefused(
            "This enrolment link is not valid for your account. Check you are logged in as the "
            "person it was issued to, or ask an admin for a new one."
        )
    if link.revoked_at is not None:
        raise EnrolmentRefused("This enrolment link was replaced by a newer one: use that.")
    if link.redeemed_at is not None:
        raise EnrolmentRefused("This enrolment link was already used. Ask an admin for a new one.")
    if link.expires_at <= timezone.now():
        raise EnrolmentRefused("This enrolment link has expired. Ask an admin for a new one.")
    return link


def enrolment_link_redeem(*, user: Any, token: str, session: Any) -> EnrolmentLink:
    """Use a link: this session may now enrol a second factor (once). Audited."""
    with transaction.atomic():
        link = enrolment_link_check(user=user, token=token)
        # Conditional: two tabs redeeming at once can't both succeed.
        if not EnrolmentLink.objects.filter(pk=link.pk, redeemed_at__isnull=True).update(
            redeemed_at=timezone.now()
        ):
            raise EnrolmentRefused(
                "This enrolment link was already used. Ask an admin for a new one."
            )
        audit_record(
            actor=user, verb="two_factor.enrolment_link_used", obj=user, data={"link": link.pk}
        )
    session[SESSION_KEY] = link.pk
    return link


def enrolment_grant_from_invitation(*, person: Any, session: Any) -> None:
    """Accepting an admin's invitation is the enrolment link: the session that set the
    password may enrol (after logging in). Audited with the invitation's acceptance."""
    if not enrolment_needs_link(person):
        return
    now = timezone.now()
    link = EnrolmentLink.objects.create(
        user=person,
        token_hash=_hash(secrets.token_urlsafe(32)),  # never shown: redeemed at once
        created_at=now,
        expires_at=now + timedelta(hours=settings.SAFEGUARD_2FA_ENROLMENT_LINK_HOURS),
        redeemed_at=now,
    )
    audit_record(
        actor=person,
        verb="two_factor.enrolment_link_used",
        obj=person,
        data={"link": link.pk, "via": "invitation"},
    )
    session[SESSION_KEY] = link.pk


def enrolment_granted(*, user: Any, session: Any) -> bool:
    """Whether this session may enrol a second factor for `user` now."""
    if not enrolment_needs_link(user):
        return True
    pk = session.get(SESSION_KEY)
    if not pk:
        return False
    return EnrolmentLink.objects.filter(
        pk=pk,
        user=user,
        redeemed_at__isnull=False,
        enrolled_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).exists()


def enrolment_grant_consume(*, user: Any, session: Any) -> None:
    """The device is enrolled: the grant is spent (call inside the enrolment's transaction)."""
    pk = session.pop(SESSION_KEY, None)
    if pk:
        EnrolmentLink.objects.filter(pk=pk, user=user, enrolled_at__isnull=True).update(
            enrolled_at=timezone.now()
        )
