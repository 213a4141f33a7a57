from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, resolve_url
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from .roles import is_admin, is_lead, is_moderator

# The login page's query flag for "a form was sent after the session ended"
# (core.views.ConsoleLoginView).
SESSION_EXPIRED_PARAM = "expired"
# Pages that make no sense as the place to return to after logging in.
_NOT_A_RETURN_PAGE = ("core:login", "core:logout", "core:two_factor", "core:keep_alive")


def view_allows_get(view: Any) -> bool:
    """Whether a resolved view answers GET: class-based views say so, function views tell by
    the method list Django's `require_http_methods` (and `require_POST`) closes over.

    Introspection of the decorator stack, because a view does not declare its methods
    anywhere else; `tests/core/test_middleware.py` pins it against real POST-only views.
    """
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        return "get" in view_class.http_method_names and hasattr(view_class, "get")
    func: Any = view
    while func is not None:
        try:
            allowed = inspect.getclosurevars(func).nonlocals.get("request_method_list")
        except TypeError:  # not a plain Python function (a partial, a builtin)
            allowed = None
        if allowed is not None:
            return "GET" in allowed
        func = getattr(func, "__wrapped__", None)
    return True


def is_return_page(path: str) -> bool:
    """True for a same-site path (with optional query) that a browser may be sent back to."""
    try:
        match = resolve(urlsplit(path).path)
    except Resolver404:
        return False
    if match.view_name in _NOT_A_RETURN_PAGE:
        return False
    return view_allows_get(match.func)


def safe_return_path(request: HttpRequest) -> str:
    """Where a browser whose form POST found no session goes back to after logging in.

    Never the POST's own URL when that URL is POST-only (the login would end on a 405 and the
    form's text would be lost). In order:
    1. the page the form was on (the Referer), if it is on this site and answers GET;
    2. the POST URL's parent (`/cases/7/decide` → `/cases/7/`), if that answers GET;
    3. the home page.
    """
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        candidate = parts.path + (f"?{parts.query}" if parts.query else "")
        # "//host/…" would be read as another site by the browser: never a return page.
        if (
            candidate.startswith("/")
            and not candidate.startswith("//")
            and is_return_page(candidate)
        ):
            return candidate
    parent = request.path_info.rstrip("/").rsplit("/", 1)[0] + "/"
    if parent != "/" and is_return_page(parent):
        return parent
    return reverse(settings.LOGIN_REDIRECT_URL)


class ConsoleLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Every console page needs a login unless marked @login_not_required (deny by default).

    `/api/` is left to DRF, whose default permission is IsAuthenticated and which answers
    401/403 JSON instead of a redirect; token-authenticated requests are only known there.

    A form sent without a session (the idle timeout passed, or the user logged out in another
    tab) goes to the login page with `next` set to a page that answers GET and a flag that
    makes the login page say the session expired; the form's text stays in the browser
    (static/js/drafts.js) and is restored when the user is back on that page.
    """

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> Any:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request: HttpRequest, view_func: Any) -> Any:
        if request.method in ("GET", "HEAD"):
            return super().handle_no_permission(request, view_func)
        query = urlencode(
            {
                self.get_redirect_field_name(view_func): safe_return_path(request),
                SESSION_EXPIRED_PARAM: "1",
            }
        )
        return HttpResponseRedirect(f"{resolve_url(self.get_login_url(view_func))}?{query}")


# Paths a user who still owes a second factor may reach.
_TWO_FACTOR_EXEMPT = ("/login/", "/logout/", "/account/2fa/", "/static/", "/healthz", "/sso/")


def requires_two_factor(user: Any) -> bool:
    if user.is_superuser or user.is_staff or is_lead(user) or is_admin(user):
        return True
    return bool(settings.SAFEGUARD_2FA_MODERATORS and is_moderator(user))


class TwoFactorRequiredMiddleware:
    """Console sessions of people who need 2FA are sent to enrol or verify first.

    API calls authenticated with a token are not sessions and pass (tokens are issued by
    admins and scoped); a session-authenticated API call without 2FA gets 403.
    """

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        path = request.path_info
        if (
            user is not None
            and user.is_authenticated
            and not path.startswith(_TWO_FACTOR_EXEMPT)
            and requires_two_factor(user)
            and not user.is_verified()
        ):
            if path.startswith("/api/"):
                if request.headers.get("Authorization", "").lower().startswith("token "):
                    return self.get_response(request)
                return JsonResponse(
                    {
                        "error": {
                            "code": "two_factor_required",
                            "message": "Verify your second factor in the console first.",
                        }
                    },
                    status=403,
                )
            back = path if request.method in ("GET", "HEAD") else safe_return_path(request)
            return redirect(f"{reverse('core:two_factor')}?{urlencode({'next': back})}")
        return self.get_response(request)
