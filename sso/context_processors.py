"""What the login page and the logout button need to know about single sign-on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .views import ID_TOKEN_KEY


def sso(request: HttpRequest) -> dict[str, Any]:
    session = getattr(request, "session", None)
    return {
        "sso_enabled": settings.SAFEGUARD_OIDC_ENABLED,
        "sso_provider_name": settings.SAFEGUARD_OIDC_PROVIDER_NAME,
        "local_password_login": settings.SAFEGUARD_LOCAL_PASSWORD_LOGIN,
        # Signed in through the provider: logging out also ends the provider's session.
        "sso_signed_in": bool(session is not None and session.get(ID_TOKEN_KEY)),
    }
