from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest


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
