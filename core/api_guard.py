"""Guards in front of every API route: `Cache-Control: no-store`, a per-address limit on
requests without credentials, and 400 (never 500) for ids that are not numbers.

A middleware, not a DRF throttle: DRF authenticates before it throttles, so requests without
credentials would never be counted. Its own module because DRF's settings import
core.throttling, which must not import rest_framework.views (through core.api).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request

from .api import is_bad_number
from .clientip import client_ip

API_PREFIXES = ("/api/", "/h/", "/m/", "/c/")
# Pages under /api/ that a browser opens (login-protected like every page).
API_PAGES = ("/api/docs/",)


def _rate(rate: str) -> tuple[int, int]:
    count, period = rate.split("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


class ApiGuardMiddleware:
    """For every API response: `Cache-Control: no-store` (responses carry case data), and a
    per-address limit on requests that bring no credentials — DRF authenticates before it
    throttles, so a flood of unauthenticated requests would otherwise never be counted. The
    counter lives in the shared cache (Redis whenever REDIS_URL is set), so every gunicorn
    worker counts against one budget."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if not path.startswith(API_PREFIXES) or path.startswith(API_PAGES):
            return self.get_response(request)
        anonymous = "HTTP_AUTHORIZATION" not in request.META and not (
            getattr(request, "user", None) is not None and request.user.is_authenticated
        )
        if anonymous:
            limited = self._over_limit(request)
            if limited is not None:
                return limited
        response = self.get_response(request)
        response.headers.setdefault("Cache-Control", "no-store, private")
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A page or endpoint given an id that is not a number (or out of range) answers 400,
        never 500 (DRF views get the same through core.api's exception handler)."""
        if not is_bad_number(exception):
            return None
        if request.path.startswith(API_PREFIXES):
            return JsonResponse(
                {"error": {"code": "parse_error", "message": "An id is not a valid number."}},
                status=400,
            )
        return bad_request(request, exception)

    def _over_limit(self, request: HttpRequest) -> HttpResponse | None:
        count, period = _rate(settings.SAFEGUARD_API_ANON_RATE)
        window = int(time.time() // period)
        key = f"throttle:anon:{client_ip(request)}:{window}"
        # add() then incr(): atomic on Redis; the key expires with its window.
        cache.add(key, 0, timeout=period + 1)
        try:
            used = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=period + 1)
            used = 1
        if used <= count:
            return None
        wait = period - int(time.time()) % period
        response = JsonResponse(
            {
                "error": {
                    "code": "throttled",
                    "message": f"Too many requests without credentials; retry in {wait} s.",
                }
            },
            status=429,
        )
        response["Retry-After"] = str(wait)
        response["Cache-Control"] = "no-store, private"
        return response
