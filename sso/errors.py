"""Refusals of a single sign-on attempt, each with a message for the person at the browser."""

from __future__ import annotations

from core.errors import DomainError


class SsoRefused(DomainError):
    """A sign-in that must not go ahead; nothing was created.

    `message` is shown on the refusal page; `detail` (never shown, logged) says exactly what
    failed for the operator, without token contents.
    """

    status = 403
    code = "sso_refused"
    field = None

    def __init__(self, message: str, *, detail: str = "", status: int = 403) -> None:
        super().__init__(message)
        self.detail = detail or message
        self.status = status
