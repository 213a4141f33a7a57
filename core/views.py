from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .health import broker_status, database_status
from .lockout import known_device_mark, login_soft_limited
from .middleware import SESSION_EXPIRED_PARAM
from .roles import is_moderator

SESSION_EXPIRED_MESSAGE = "Your session expired; sign in again to continue. Your draft was kept."
SESSION_RESUMED_MESSAGE = (
    "Your session had expired; you are signed in again. Your draft was kept in this browser tab."
)


SOFT_LIMITED_MESSAGE = (
    "Too many failed logins for this account from elsewhere: for now it can log in only from a "
    "browser or network it has used before. Ask an admin to unlock it, or try again later."
)


class ConsoleAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing — before the password is checked — a username under a
    spread-out guessing attack from a browser and address it never used (core.lockout)."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if self.request is not None and login_soft_limited(self.request, username):
            raise ValidationError(SOFT_LIMITED_MESSAGE, code="soft_limited")
        return super().clean()


class ConsoleLoginView(LoginView):
    """Django's login, which also says why a person is here when their session ran out.

    The login-required middleware sends a form POST that found no session here with
    `?expired=1`; the flag travels through the form so the page after login says so too.
    A successful login marks the browser as known for the per-username soft limit.
    """

    redirect_authenticated_user = True
    authentication_form = ConsoleAuthenticationForm

    def session_expired(self) -> bool:
        flag = self.request.POST.get(SESSION_EXPIRED_PARAM) or self.request.GET.get(
            SESSION_EXPIRED_PARAM
        )
        return flag == "1"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["session_expired"] = self.session_expired()
        context["session_expired_message"] = SESSION_EXPIRED_MESSAGE
        form = context.get("form")
        if form is not None and form.has_error(NON_FIELD_ERRORS, "soft_limited"):
            context["soft_limited"] = SOFT_LIMITED_MESSAGE
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        known_device_mark(self.request, response, form.get_user().get_username())
        if self.session_expired():
            messages.info(self.request, SESSION_RESUMED_MESSAGE)
        return response


@never_cache
@require_POST
def keep_alive(request: HttpRequest) -> JsonResponse:
    """The warning's "Stay signed in": any request that reaches the server is all the idle
    timeout needs (SESSION_SAVE_EVERY_REQUEST pushes the session's expiry forward each time).

    Console roles only (deny by default); anonymous callers never get here (login middleware).
    """
    if not is_moderator(request.user):  # any console role: moderator, lead or admin
        raise PermissionDenied
    return JsonResponse({"idle_timeout": settings.SESSION_COOKIE_AGE})


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every configured dependency answers, 503 otherwise. No detail beyond up/down."""
    checks = {"database": database_status(), "broker": broker_status()}
    healthy = all(value in ("ok", "not_configured") for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404s: the API answers in its one JSON error shape; console pages get the HTML page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    return render(request, "404.html", status=404)
