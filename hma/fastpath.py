"""The lean path of HMA's read-only lookups: ``GET /m/raw_lookup`` and ``GET /m/lookup`` with
``Authorization: Token``, answered without the rest of the stack — by hma.wsgi before Django's
handler under gunicorn (config.wsgi), and by an early middleware where Django is entered
directly (the test client, ASGI). Both call ``lookup_body`` and ``LookupHeaders`` below.

Why: a lookup at 10 M hashes costs ≈ 0.3 ms of search, but through the console's fourteen
middleware and DRF (token query, DRF's throttle, content negotiation) an authenticated request
cost ≈ 7 ms of server CPU here, capping lookups far below HMA's target (benchmarks/HMA.md).

What the path does, in the order the full stack would refuse:

1. The query parameters and the signal, with the same serializer and signal types as the
   DRF view (hma.api), and an ``Accept`` header (or none) under which DRF would pick its
   plain JSON renderer. Nothing is counted or read before the input is known good.
2. The token: ``core.authentication.token_authenticate_cached`` — the same validity rules as
   every route, its answer reused in the process for SAFEGUARD_TOKEN_CACHE_SECONDS (a
   revocation applies here within that time; an expiry at once).
3. The permission of hma.permissions.CanMatch: a platform token, or a console token whose
   user may read list entries.
4. The rate limit: ``core.throttling.rate_hit`` on the token's bucket, the one the DRF
   throttle counts for every other API route (one Redis round trip).
5. The answer, built by the functions the DRF views use (identical JSON), with the headers
   the skipped middleware would add (security, frame, CSP, ``Vary``, ``Content-Length``,
   ``Cache-Control: no-store``): the full stack's headers, byte for byte
   (tests/hma/test_fastpath.py).

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
# Accept headers under which DRF's negotiation picks its JSON renderer with no parameters
# (no header at all is ""); anything else, and a ``format`` query parameter, is left to it.
_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json", "application/*"})
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


# Set in the WSGI environ by hma.wsgi when its lookup path has tried a request and left it to
# Django: the middleware below then does not try it again (no second token check, no second
# count against the rate limit). No client can set it: headers reach the environ as HTTP_*.
TRIED = "safeguard.hma_lookup_tried"


def lookup_body(request: HttpRequest, route: Route) -> bytes | None:
    """The body of the 200 answer, or None to leave the request to the full stack: the
    checks of the module docstring, in its order (the caller has matched method and path)."""
    key = _token_key(request)
    if key is None:
        return None
    if settings.SECURE_SSL_REDIRECT and not request.is_secure():
        return None  # SecurityMiddleware redirects to HTTPS
    try:
        request.get_host()
    except DisallowedHost:
        return None  # CommonMiddleware answers 400
    if request.META.get("HTTP_ACCEPT", "") not in _PLAIN_ACCEPT or "format" in request.GET:
        return None  # DRF's content negotiation: 406, 404 for a format, indented JSON
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
    # The DRF view's answer: its renderer's bytes.
    return _RENDERER.render(body)


class LookupHeaders:
    """The headers of a 200 answer besides Content-Length and X-Request-ID: the DRF view's
    (Content-Type, Allow), ``Cache-Control: no-store``, and those the skipped middleware add
    (``Vary: Cookie``, security, frame, CSP, COOP, HSTS on HTTPS).

    The skipped middleware's response phase is called as the stack would (innermost first),
    once per (path, scheme): their headers depend on the settings, the path and the scheme
    only (no nonce: nothing is rendered), and building the CSP header cost as much as the
    lookup's search."""

    def __init__(self) -> None:
        self.add_headers = [
            CSPMiddleware(_noop).process_response,
            XFrameOptionsMiddleware(_noop).process_response,
            SecurityMiddleware(_noop).process_response,
        ]
        self.known: dict[tuple[str, bool], list[tuple[str, str]]] = {}

    def get(self, request: HttpRequest, route: Route) -> list[tuple[str, str]]:
        key = (request.path_info, request.is_secure())
        headers = self.known.get(key)
        if headers is None:
            response = HttpResponse(content_type="application/json")
            response["Allow"] = route.allow
            response["Cache-Control"] = "no-store, private"
            # The full stack reads the session on every request (authentication, OTP), so
            # SessionMiddleware marks every answer as depending on the cookie.
            response["Vary"] = "Cookie"
            for add in self.add_headers:
                response = add(request, response)
            headers = self.known[key] = list(response.items())
        return headers


class HmaLookupFastPathMiddleware:
    """Before every middleware that a lookup can do without (after the request id and the
    metrics, which see every request): the rest of the stack is ``get_response``.

    Under gunicorn (config.wsgi) hma.wsgi answers these lookups before Django; this
    middleware serves the same path where Django is entered directly (the test client, ASGI)
    and steps aside for a request hma.wsgi has already tried."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.headers = LookupHeaders()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        route = ROUTES.get(request.path_info) if request.method == "GET" else None
        response = self.answer(request, route) if route is not None else None
        return response if response is not None else self.get_response(request)

    def answer(self, request: HttpRequest, route: Route) -> HttpResponse | None:
        """The 200 answer, or None to leave the request to the full stack."""
        if request.META.get(TRIED):
            return None
        body = lookup_body(request, route)
        if body is None:
            return None
        response = HttpResponse(body)
        for name, value in self.headers.get(request, route):
            response[name] = value
        response["Content-Length"] = str(len(body))  # as CommonMiddleware adds it
        return response
