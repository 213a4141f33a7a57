from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .roles import is_admin, is_lead, is_moderator


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "is_moderator": is_moderator(user),
        "is_lead": is_lead(user),
        "is_admin": is_admin(user),
    }


def session(request: HttpRequest) -> dict[str, Any]:
    """The idle timeout, for static/js/session.js to warn a minute before the session ends.

    Only for people with a console role: they are the ones with work to lose (and the only
    ones the keep-alive endpoint answers).
    """
    if not is_moderator(getattr(request, "user", None)):  # any console role
        return {}
    return {"session_idle_timeout": settings.SESSION_COOKIE_AGE}
