from typing import Any

from django.http import HttpRequest

from .roles import is_admin, is_lead, is_moderator


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "is_moderator": is_moderator(user),
        "is_lead": is_lead(user),
        "is_admin": is_admin(user),
    }
