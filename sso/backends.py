"""The authentication backend that sessions signed in through the identity provider name."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest


class OidcBackend(ModelBackend):
    """Loads the user of an SSO session and gives them their groups' permissions.

    Authenticates nothing itself: `sso.views.callback` logs the person in after verifying the
    provider's ID token, naming this backend. Refusing every `authenticate()` call matters:
    inheriting ModelBackend's would accept a password here, which would quietly reopen
    password sign-in when SAFEGUARD_LOCAL_PASSWORD_LOGIN is off (ModelBackend removed).
    """

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> None:
        return None
