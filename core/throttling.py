"""Per-token API rate limits: each token (or session user) gets its own bucket. Requests
without credentials are limited earlier, per client address (core.api_guard)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .clientip import client_ip
from .models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_rate(self) -> str:
        # Read at request time, so the rate is configurable (and testable) without a restart.
        return settings.SAFEGUARD_API_RATE

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{settings.SAFEGUARD_THROTTLE_NAMESPACE}:{ident}"

    def get_ident(self, request: Request) -> str:
        return client_ip(request) or "unknown"
