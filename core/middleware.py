from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from .roles import is_admin, is_lead, is_moderator


class ConsoleLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Every console page needs a login unless marked @login_not_required (deny by default).

    `/api/` is left to DRF, whose default permission is IsAuthenticated and which answers
    401/403 JSON instead of a redirect; token-authenticated requests are only known there.
    """

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> Any:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


# Paths a user who still owes a second factor may reach.
_TWO_FACTOR_EXEMPT = ("/login/", "/logout/", "/account/2fa/", "/static/", "/healthz")


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
            return redirect(f"{reverse('core:two_factor')}?{urlencode({'next': path})}")
        return self.get_response(request)
