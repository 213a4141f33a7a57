"""`Authorization: Token <key>` authentication against hashed, revocable API tokens.

``token_authenticate_cached`` is the same check with its answer reused for
SAFEGUARD_TOKEN_CACHE_SECONDS in the process, for the HMA lookup fast path (hma.fastpath)
only: every other API route reads the token's row on every request, so a revocation there
takes effect at once.
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from . import sqlrows
from .models import ApiToken

_TOUCH_EVERY = timedelta(minutes=1)


@functools.cache
def _token_query() -> tuple[str, type[Any]]:
    """The token-with-its-user SQL, and the user model whose columns follow the token's."""
    fk = ApiToken._meta.get_field("user")
    user_model = fk.related_model
    assert isinstance(user_model, type) and user_model._meta.pk is not None
    q = connection.ops.quote_name
    token, user = q(ApiToken._meta.db_table), q(user_model._meta.db_table)
    key_hash = q(ApiToken._meta.get_field("key_hash").column)
    revoked = q(ApiToken._meta.get_field("revoked_at").column)
    # Table and column names from the models' meta; the key hash is a parameter.
    sql = (
        f"SELECT {sqlrows.columns(ApiToken, 't')}, {sqlrows.columns(user_model, 'u')} "  # noqa: S608
        f"FROM {token} t JOIN {user} u ON u.{q(user_model._meta.pk.column)} = t.{q(fk.column)} "
        f"WHERE t.{key_hash} = %s AND t.{revoked} IS NULL"
    )
    return sql, user_model


def _token_with_user(key_hash: str) -> ApiToken | None:
    """What `ApiToken.objects.select_related("user").filter(key_hash=…, revoked_at=None)
    .first()` returns, in plain SQL: every API request asks, and the ORM's compilation of that
    join cost more CPU than the read (core.sqlrows)."""
    sql, user_model = _token_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(ApiToken._meta.concrete_fields)
    token = sqlrows.build(ApiToken, row[:width])
    token.user = sqlrows.build(user_model, row[width:])
    return token


def token_check(key_hash: str) -> ApiToken | None:
    """The live token with this key hash (its user loaded), or None: unknown, revoked,
    expired, or its user deactivated. Records the use (at most once a minute)."""
    token = _token_with_user(key_hash)
    now = timezone.now()
    # An expired key is refused exactly like a revoked one: same status, same message, so
    # the answer tells a caller nothing about which keys once existed.
    if (
        token is None
        or not token.user.is_active
        or (token.expires_at is not None and token.expires_at <= now)
    ):
        return None
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
        # Throttled bookkeeping, not a state change of the case data: no audit event.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


# key hash → (token with its user, monotonic time it was read). Only live tokens are kept, so
# the size is bounded by the live tokens (and _CACHE_MAX, against a flood of valid keys).
_cache: dict[str, tuple[ApiToken, float]] = {}
_CACHE_MAX = 4096


def token_authenticate_cached(key: str) -> ApiToken | None:
    """``token_check`` of a raw key, its answer reused in this process for
    SAFEGUARD_TOKEN_CACHE_SECONDS (0: never reused).

    Why: reading the token (and its user) is one query per request, most of a cheap
    request's cost (benchmarks/HMA.md). What that costs in security, and why it is bounded:
    a revocation, or the deactivation of the token's user, reaches a process within that many
    seconds (a few; default 5); an expiry is checked on every request against the cached
    ``expires_at``; an unknown or refused key is never cached, so it is read every time.
    The user object is reused too, with Django's per-object permission cache: a console
    user's lost permission is likewise honoured within the same seconds.
    """
    key_hash = ApiToken.hash_key(key)
    ttl = settings.SAFEGUARD_TOKEN_CACHE_SECONDS
    now = time.monotonic()
    cached = _cache.get(key_hash)
    if cached is not None and now - cached[1] < ttl:
        token = cached[0]
        if token.expires_at is None or token.expires_at > timezone.now():
            return token
    _cache.pop(key_hash, None)
    token = token_check(key_hash)
    if token is not None and ttl > 0:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key_hash] = (token, now)
    return token


def token_cache_clear() -> None:
    """Forget every reused token answer in this process (tests; a revocation here)."""
    _cache.clear()


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
        token = token_check(ApiToken.hash_key(key))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
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
