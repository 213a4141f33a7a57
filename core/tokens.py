"""API tokens: issue one (its key is shown once, only its SHA-256 is stored) and revoke it.

A token is a platform's or a person's:
- scope `platform`: owned by a service account with no role and no console login, which may
  only submit items and reports and read back its own submissions. A platform keeps its
  account when its key is rotated (issue a new token for the same account, then revoke the
  old one), so it still sees what it submitted before.
- scope `console`: acts as a console user, with that user's permissions.

Every change writes an audit event in the same transaction; the key never reaches the log.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .audit import Actor, audit_record
from .errors import Conflict, DomainError
from .models import ApiToken

User = get_user_model()

NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length or 100


class TokenError(DomainError):
    """A refused token change, naming the form field; nothing saved."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


def platform_accounts() -> QuerySet:
    """The service accounts that own platform tokens, for issuing a platform a new key."""
    return (
        User.objects.filter(api_tokens__scope=ApiToken.Scope.PLATFORM)
        .distinct()
        .order_by("username")
    )


def is_platform_account(user: AbstractBaseUser) -> bool:
    return ApiToken.objects.filter(user=user, scope=ApiToken.Scope.PLATFORM).exists()


def _platform_owner(*, name: str, account: AbstractBaseUser | None) -> AbstractBaseUser:
    """The given platform account, or a new one named `platform-<name>`."""
    if account is not None:
        if not is_platform_account(account):
            raise TokenError(
                "platform_account", f"{account.get_username()} is not a platform account."
            )
        return account
    username = f"platform-{name}"[:150]
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        # get_or_create here once handed a person's account to a platform when a token's
        # name matched it: only an existing *platform* account may be reused by name.
        if not is_platform_account(existing):
            raise TokenError(
                "name",
                f"The account name {username!r} is taken by a person; choose another name.",
            )
        return existing
    service_user = User(username=username, is_active=True)
    service_user.set_unusable_password()
    service_user.save()
    return service_user


def api_token_create(
    *,
    name: str,
    actor: Actor,
    user: AbstractBaseUser | None = None,
    platform_account: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its key; the key is never stored, only its SHA-256.

    With `user` the token acts as that console user. Without it, the token belongs to a
    platform: `platform_account` (a key rotation) or a new service account `platform-<name>`.
    From `expires_at` on, the key is refused like a revoked one.
    """
    name = name.strip()
    if not name:
        raise TokenError("name", "Give the token a name (who or what uses it).")
    if len(name) > NAME_MAX_LENGTH:
        raise TokenError("name", f"A name has at most {NAME_MAX_LENGTH} characters.")
    if user is not None and platform_account is not None:
        raise TokenError("scope", "A token acts as a person or a platform, not both.")
    if expires_at is not None and expires_at <= timezone.now():
        raise TokenError("expires_at", "Choose an expiry in the future.")
    if user is not None:
        if not user.is_active:
            raise TokenError("user", f"{user.get_username()} is deactivated.")
        if is_platform_account(user):
            raise TokenError(
                "user", f"{user.get_username()} is a platform account: issue a platform token."
            )
    key = "sg_" + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            if ApiToken.objects.filter(name=name).exists():
                raise TokenError("name", f"A token named {name!r} already exists.")
            if user is None:
                scope = ApiToken.Scope.PLATFORM
                owner = _platform_owner(name=name, account=platform_account)
            else:
                scope = ApiToken.Scope.CONSOLE
                owner = user
            token = ApiToken.objects.create(
                name=name,
                prefix=key[:10],
                key_hash=ApiToken.hash_key(key),
                user=owner,
                scope=scope,
                expires_at=expires_at,
            )
            audit_record(
                actor=actor,
                verb="api_token.created",
                obj=token,
                data={
                    "name": name,
                    "scope": scope,
                    "user": owner.get_username(),
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
    except IntegrityError:
        # Two admins issuing the same name at once: the unique index decides, one wins.
        raise Conflict(f"A token named {name!r} already exists.") from None
    return token, key


def api_token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    """Revoke a token at once (its next request gets 401). Revoking twice changes nothing."""
    with transaction.atomic():
        # One conditional UPDATE: of two concurrent revokes only one records an event.
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_record(
                actor=actor, verb="api_token.revoked", obj=token, data={"name": token.name}
            )
    token.refresh_from_db()
    return token
