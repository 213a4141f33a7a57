"""Deny by default, proven over the whole URL conf: a new route without protection fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

# Routes anyone may reach: the login page, logout, the health check, and single sign-on's
# sign-in, callback and logout (sso.views; 404 while SSO is not configured).
PUBLIC = {"/login/", "/logout/", "/healthz", "/sso/login", "/sso/callback", "/sso/logout"}
# Routes any authenticated caller may open: home (shows "ask for a role"), and the API's
# schema and docs, which platforms need and which hold no data (the code is open source).
ANY_USER = {"/", "/api/schema/", "/api/docs/", "/account/2fa/"}
_CONVERTERS = {
    "int": "1",
    "str": "x",
    "slug": "x",
    "path": "x",
    "uuid": "00000000-0000-0000-0000-000000000001",
}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for p in patterns:
        route = str(p.pattern)
        if isinstance(p, URLResolver):
            if route.startswith("admin/"):
                yield "/admin/"
                continue
            yield from _walk(p.url_patterns, prefix + route)
        elif isinstance(p, URLPattern):
            full = prefix + route
            if full.startswith("^") or "(?P" in full:
                continue  # regex routes (static helpers): none in our URL conf
            yield "/" + re.sub(
                r"<(?:(\w+):)?\w+>", lambda m: _CONVERTERS[m.group(1) or "str"], full
            )


ALL_ROUTES = sorted(set(_walk(get_resolver().url_patterns)))


def test_the_url_conf_was_walked() -> None:
    assert "/api/v1/items" in ALL_ROUTES and "/queue/" in ALL_ROUTES


@pytest.mark.django_db
@pytest.mark.parametrize("path", [r for r in ALL_ROUTES if r not in PUBLIC])
def test_anonymous_users_are_refused_everywhere(path: str, client: Client) -> None:
    for method in ("get", "post"):
        response = getattr(client, method)(path)
        # The API, and HMA's routes (hma.urls: /h, /m, /c), answer 401/403; the docs are a page.
        # /metrics is for Prometheus, not people: 401/403 (core.metrics_views), never a login.
        if path.startswith(("/api/", "/h/", "/m/", "/c/", "/metrics")) and path != "/api/docs/":
            assert response.status_code in (401, 403), (method, path, response.status_code)
        else:
            assert response.status_code == 302, (method, path, response.status_code)
            assert "/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", [r for r in ALL_ROUTES if r not in PUBLIC | ANY_USER])
def test_an_outsider_without_a_role_gets_403_or_404(path: str, outsider: Any) -> None:
    client = APIClient()
    client.force_login(outsider)
    for method in ("get", "post"):
        response = getattr(client, method)(path)
        if path == "/admin/":
            assert response.status_code == 302  # admin site: staff only, back to its login
            continue
        assert response.status_code in (403, 404, 405), (method, path, response.status_code)
        if response.status_code == 405:
            # Method not allowed is only acceptable when the other method is refused too.
            continue


@pytest.mark.django_db
def test_unknown_routes_are_plain_404_pages_without_stack_traces(
    client: Client, settings: Any
) -> None:
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code in (302, 404)
    client.force_login(_any_user())
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"Traceback" not in response.content and b"urlpatterns" not in response.content


def _any_user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("someone", password="x-long-password-123")
