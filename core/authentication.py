"""`Authorization: Token <key>` authentication against hashed, revocable API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import ApiToken

_TOUCH_EVERY = timedelta(minutes=1)


class HashedTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header.") from None
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=ApiToken.hash_key(key), revoked_at__isnull=True)
            .first()
        )
        now = timezone.now()
        # An expired key is refused exactly like a revoked one: same status, same message, so
        # the answer tells a caller nothing about which keys once existed.
        if (
            token is None
            or not token.user.is_active
            or (token.expires_at is not None and token.expires_at <= now)
        ):
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
            # Throttled bookkeeping, not a state change of the case data: no audit event.
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class HashedTokenScheme(OpenApiAuthenticationExtension):
        target_class = "core.authentication.HashedTokenAuthentication"
        name = "tokenAuth"

        def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
            return {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Token <key>`; admins issue keys on the console's API tokens "
                "page or with `python manage.py create_api_token NAME`.",
            }
except ImportError:  # pragma: no cover
    pass
