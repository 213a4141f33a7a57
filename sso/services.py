"""Signing a person in from the provider's verified claims: provision on first sign-in, set
the role from the groups claim at every sign-in, record the provider's MFA assertion.

Called after every network step (code exchange, token verification) has finished, so the one
transaction here holds no connection to the provider. Every change is audited inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import SystemActor, audit_record
from core.roles import ADMIN, ROLE_NAMES

from .errors import SsoRefused
from .mapping import mfa_asserted, role_from_claims
from .models import IdpMfaDevice, OidcIdentity

User = get_user_model()
# Role changes that follow the provider's groups are the provider's doing, not the person's.
IDENTITY_PROVIDER = SystemActor("identity provider")
NO_ROLE = (
    "Your account at the identity provider is not in any group that gives access to "
    "Safeguard, so you were not signed in. If you need access, ask your administrator to add "
    "you to the right group."
)
MFA_DEVICE_NAME = "identity provider"


@dataclass(frozen=True)
class SignIn:
    """The outcome: `role` None means the person was refused (and lost any role they had)."""

    user: Any
    role: str | None
    mfa_device: IdpMfaDevice | None
    created: bool


def _username(claims: dict[str, Any]) -> str:
    name = claims.get(settings.SAFEGUARD_OIDC_USERNAME_CLAIM)
    if not isinstance(name, str) or not name.strip():
        raise SsoRefused(
            "The identity provider did not say who you are (no user name in its answer), so "
            "no account was created. Tell your administrator.",
            detail=f"claim {settings.SAFEGUARD_OIDC_USERNAME_CLAIM!r} missing or empty",
        )
    name = name.strip()
    try:
        if len(name) > 150:
            raise ValidationError("too long")
        UnicodeUsernameValidator()(name)
    except ValidationError:
        raise SsoRefused(
            "Your user name at the identity provider cannot be used in Safeguard (letters, "
            "digits and @ . + - _ only, at most 150). Tell your administrator.",
            detail=f"claim {settings.SAFEGUARD_OIDC_USERNAME_CLAIM!r} is not a valid username",
        ) from None
    return name


def _email(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    return email if isinstance(email, str) and len(email) <= 254 else ""


def _sync_role(user: Any, role: str | None) -> None:
    """Make the person's console role exactly what the provider's groups say, audited."""
    current = set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
    wanted = {role} if role else set()
    if current == wanted:
        return
    user.groups.remove(*Group.objects.filter(name__in=ROLE_NAMES).exclude(name__in=wanted))
    if role:
        user.groups.add(Group.objects.get(name=role))
    user.is_staff = role == ADMIN or user.is_superuser
    user.save(update_fields=["is_staff"])
    audit_record(
        actor=IDENTITY_PROVIDER,
        verb="person.role_changed",
        obj=user,
        data={"from": sorted(current), "to": role, "by": "identity provider groups"},
    )


def _provision(*, claims: dict[str, Any], role: str) -> tuple[Any, OidcIdentity]:
    username = _username(claims)
    # A local account with this name is someone else until an administrator says otherwise:
    # linking it silently would let whoever holds that name at the provider take it over.
    if User.objects.filter(username__iexact=username).exists():
        raise SsoRefused(
            f"A Safeguard account named {username} already exists and is not linked to your "
            "identity provider account, so you were not signed in. Ask your administrator.",
            detail="username taken by an unlinked account",
        )
    user = User(username=username, email=_email(claims))
    user.set_unusable_password()  # signs in only through the provider
    user.save()
    identity = OidcIdentity.objects.create(user=user, issuer=claims["iss"], subject=claims["sub"])
    audit_record(
        actor=user,
        verb="person.provisioned",
        obj=user,
        data={"by": "single sign-on", "issuer": claims["iss"], "role": role},
    )
    return user, identity


def sso_sign_in(*, claims: dict[str, Any]) -> SignIn:
    """Find or provision the person the verified claims name and set their role.

    1. Map the groups claim to a role and read the MFA assertion (no database yet).
    2. Find the identity by (issuer, subject), locking it so two sign-ins of one person
       apply their role changes one after the other.
    3. Unknown identity: refuse when no group is mapped (nothing is created), else create the
       user (no usable password) and the identity link.
    4. Known identity: refuse a deactivated account; set the role, which may demote the person
       or, with no mapped group left, take every role away (committed, then refused).
    5. Record the sign-in, and the provider's MFA device when MFA was asserted.
    """
    role = role_from_claims(claims)
    mfa = mfa_asserted(claims)
    created = False
    try:
        with transaction.atomic():
            identity = (
                OidcIdentity.objects.select_for_update()
                .select_related("user")
                .filter(issuer=claims["iss"], subject=claims["sub"])
                .first()
            )
            if identity is None:
                if role is None:
                    raise SsoRefused(NO_ROLE, detail="no mapped group; nothing created")
                user, identity = _provision(claims=claims, role=role)
                created = True
            else:
                user = identity.user
                if not user.is_active:
                    raise SsoRefused(
                        "Your Safeguard account is deactivated. Ask an administrator.",
                        detail="account deactivated",
                    )
            _sync_role(user, role)
            if role is None:
                return SignIn(user=user, role=None, mfa_device=None, created=False)
            email = _email(claims)
            if email and email != user.email:
                user.email = email
                user.save(update_fields=["email"])
            identity.last_login_at = timezone.now()
            identity.save(update_fields=["last_login_at"])
            device = None
            if mfa:
                device, _ = IdpMfaDevice.objects.get_or_create(
                    user=user, name=MFA_DEVICE_NAME, defaults={"confirmed": True}
                )
            audit_record(
                actor=user,
                verb="sso.signed_in",
                obj=user,
                data={"issuer": claims["iss"], "role": role, "mfa_asserted": mfa},
            )
    except IntegrityError:
        # Two first sign-ins of one person at the same moment (two tabs): the unique
        # constraints let one create the account and refuse the other, which may simply retry.
        raise SsoRefused(
            "Your account was being set up by another sign-in at the same moment. Start "
            "again from the login page.",
            detail="concurrent first sign-in",
            status=409,
        ) from None
    return SignIn(user=user, role=role, mfa_device=device, created=created)
