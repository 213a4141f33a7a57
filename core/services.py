"""Workflows of the core app: API tokens."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .audit import Actor, audit_record
from .models import ApiToken

User = get_user_model()


def api_token_create(
    *, name: str, actor: Actor, user: AbstractBaseUser | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its key; the key is never stored, only its SHA-256.

    Without `user` the token belongs to a platform service account (no console login, no role),
    which may only submit items and reports and read back its own submissions.
    """
    key = "sg_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        if user is None:
            service_user, created = User.objects.get_or_create(
                username=f"platform-{name}"[:150], defaults={"is_active": True}
            )
            if created:
                service_user.set_unusable_password()
                service_user.save(update_fields=["password"])
            scope = ApiToken.Scope.PLATFORM
            owner = service_user
        else:
            scope = ApiToken.Scope.CONSOLE
            owner = user
        token = ApiToken.objects.create(
            name=name, prefix=key[:10], key_hash=ApiToken.hash_key(key), user=owner, scope=scope
        )
        audit_record(
            actor=actor,
            verb="api_token.created",
            obj=token,
            data={"name": name, "scope": scope, "user": owner.get_username()},
        )
    return token, key


def api_token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_record(
                actor=actor, verb="api_token.revoked", obj=token, data={"name": token.name}
            )
    token.refresh_from_db()
    return token
