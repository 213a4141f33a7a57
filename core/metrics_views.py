"""`GET /metrics`: the Prometheus scrape, for machines only, denied unless configured.

Who may scrape is decided before anything is computed, so a refused caller costs nothing:
1. Neither `SAFEGUARD_METRICS_TOKEN` nor `SAFEGUARD_METRICS_ALLOWED_NETWORKS` set → 403 for
   everyone (deny by default; a console login is never enough: metrics are for Prometheus).
2. An allow-list is set and the client (core.clientip: X-Forwarded-For believed only from
   trusted proxies) is outside it → 403.
3. A token is set and the request lacks `Authorization: Bearer <token>` → 401 with
   `WWW-Authenticate` (compared in constant time).
When both are set, both must pass.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from .clientip import client_ip
from .metrics import render

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _bearer(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may scrape, else the 401/403 response."""
    token: str = settings.SAFEGUARD_METRICS_TOKEN
    allowed: list[str] = settings.SAFEGUARD_METRICS_ALLOWED_NETWORKS
    if not token and not allowed:
        return _error(
            403,
            "metrics_not_configured",
            "Metrics are off: set SAFEGUARD_METRICS_TOKEN and/or "
            "SAFEGUARD_METRICS_ALLOWED_NETWORKS.",
        )
    if allowed and not _in_networks(client_ip(request), _networks(tuple(allowed))):
        return _error(403, "forbidden", "This address may not read the metrics.")
    if token and not hmac.compare_digest(_bearer(request).encode(), token.encode()):
        response = _error(401, "not_authenticated", "A valid bearer token is required.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


# csrf_exempt: no cookie-authenticated state is read or changed here, and a POST must get the
# same 401/403 as a GET instead of a CSRF page (the refusal comes before the method check).
@csrf_exempt
@login_not_required
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    refused = metrics_refusal(request)
    if refused is not None:
        return refused
    if request.method not in ("GET", "HEAD"):
        response = _error(405, "method_not_allowed", "Use GET.")
        response["Allow"] = "GET, HEAD"
        return response
    body, content_type = render()
    return HttpResponse(body, content_type=content_type)
