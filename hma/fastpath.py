"""The lean path of HMA's read-only lookups: ``GET /m/raw_lookup`` and ``GET /m/lookup`` with
``Authorization: Token``, answered by an early middleware without the rest of the stack.

Why: a lookup at 10 M hashes costs ≈ 0.3 ms of search, but through the console's fourteen
middleware and DRF (token query, DRF's throttle, content negotiation) an authenticated request
cost ≈ 7 ms of server CPU here, capping lookups far below HMA's target (benchmarks/HMA.md).

What the path does, in the order the full stack would refuse:

1. The query parameters and the signal, with the same serializer and signal types as the
   DRF view (hma.api). Nothing is counted or read before the input is known good.
2. The token: ``core.authentication.token_authenticate_cached`` — the same validity rules as
   every route, its answer reused in the process for SAFEGUARD_TOKEN_CACHE_SECONDS (a
   revocation applies here within that time; an expiry at once).
3. The permission of hma.permissions.CanMatch: a platform token, or a console token whose
   user may read list entries.
4. The rate limit: ``core.throttling.rate_hit`` on the token's bucket, the one the DRF
   throttle counts for every other API route (one Redis round trip).
5. The answer, built by the functions the DRF views use (identical JSON), with the headers
   the skipped middleware would add (security, frame, CSP, ``Cache-Control: no-store``).

Deny by default, and one answer per refusal: the path itself only ever answers 200. Whatever it
does not accept — no token, an unknown, revoked or expired one, no permission, over the rate,
bad input, a session, a host not allowed, plain HTTP where HTTPS is required — goes on down
the full middleware stack to the DRF view, which refuses it exactly as before (401, 403, 429,
400 with the same bodies). A refused request may be counted twice against the rate limit
(here, then by DRF), which only happens once the limit is already reached. Lookups write
nothing and are not audited (as on the full path); no media is read or returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csp.middleware import CSPMiddleware
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.authentication import token_authenticate_cached
from core.errors import DomainError
from core.models import ApiToken
from core.throttling import rate_hit, token_bucket

from .api import (
    LookupApi,
    RawLookupApi,
    lookup_answer,
    lookup_query,
    lookup_signal,
    raw_lookup_answer,
    raw_lookup_query,
)
from .permissions import READ_LISTS


@dataclass(frozen=True)
class Route:
    query: Callable[[Any], dict[str, Any]]  # the checked query parameters
    answer: Callable[..., Any]  # the body, from the query and the signal
    allow: str  # the DRF view's Allow header


def _allow(view: type[APIView]) -> str:
    instance = view()
    if hasattr(instance, "get") and not hasattr(instance, "head"):
        instance.head = instance.get  # as View.setup() does for each request
    return ", ".join(instance.allowed_methods)


# The GET routes the lean path may answer, by path.
ROUTES = {
    "/m/raw_lookup": Route(raw_lookup_query, raw_lookup_answer, _allow(RawLookupApi)),
    "/m/lookup": Route(lookup_query, lookup_answer, _allow(LookupApi)),
}
_RENDERER = JSONRenderer()
# The refusals of the input: the DRF view raises the same and answers 400.
_BAD_INPUT = (DomainError, APIException)


def _token_key(request: HttpRequest) -> str | None:
    """The key of ``Authorization: Token <key>``, or None for anything else (as DRF reads it)."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2 or parts[0].lower() != "token":
        return None
    return parts[1]


def _may_match(token: ApiToken) -> bool:
    """hma.permissions.CanMatch for a token."""
    if token.scope == ApiToken.Scope.PLATFORM:
        return True
    return bool(token.user.is_active and token.user.has_perm(READ_LISTS))


def _noop(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    raise AssertionError("the response-phase middleware is called directly")


class HmaLookupFastPathMiddleware:
    """Before every middleware that a lookup can do without (after the request id and the
    metrics, which see every request): the rest of the stack is ``get_response``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # The response phase of the middleware skipped here that add headers to an API answer,
        # called as the stack would (innermost first), so the headers are the same. Their
        # headers depend on the settings, the path and the scheme only (no nonce: nothing is
        # rendered): worked out once per (path, scheme) and copied, as building the CSP header
        # cost as much as the lookup's search.
        self.add_headers = [
            CSPMiddleware(_noop).process_response,
            XFrameOptionsMiddleware(_noop).process_response,
            SecurityMiddleware(_noop).process_response,
        ]
        self.headers: dict[tuple[str, bool], dict[str, str]] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        route = ROUTES.get(request.path_info) if request.method == "GET" else None
        response = self.answer(request, route) if route is not None else None
        return response if response is not None else self.get_response(request)

    def answer(self, request: HttpRequest, route: Route) -> HttpResponse | None:
        """The 200 answer, or None to leave the request to the full stack."""
        key = _token_key(request)
        if key is None:
            return None
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return None  # SecurityMiddleware redirects to HTTPS
        try:
            request.get_host()
        except DisallowedHost:
            return None  # CommonMiddleware answers 400
        try:
            query = route.query(request.GET)
            signal_type, value = lookup_signal(query)
        except _BAD_INPUT:
            return None
        token = token_authenticate_cached(key)
        if token is None or not _may_match(token):
            return None
        if rate_hit(token_bucket(token.pk)) is not None:
            return None
        try:
            body = route.answer(query, signal_type, value)
        except _BAD_INPUT:
            return None
        # The DRF view's answer: its renderer's bytes, its content type and Allow header.
        response = HttpResponse(_RENDERER.render(body), content_type="application/json")
        response["Allow"] = route.allow
        response["Cache-Control"] = "no-store, private"
        for name, header in self._headers(request).items():
            response[name] = header
        return response

    def _headers(self, request: HttpRequest) -> dict[str, str]:
        key = (request.path_info, request.is_secure())
        headers = self.headers.get(key)
        if headers is None:
            response = HttpResponse(content_type="application/json")
            before = set(response.headers)
            for add in self.add_headers:
                response = add(request, response)
            headers = self.headers[key] = {
                name: value for name, value in response.headers.items() if name not in before
            }
        return headers
