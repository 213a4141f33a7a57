"""One base for refusals the domain makes, so pages and the API translate them in one place.

A service raises a `DomainError` subclass with a message a person can act on. The API's
exception handler (`core.api.exception_handler`) renders it as the documented error shape
`{"error": {"code", "message", "fields"?}}`; HTML views use `core.views.refusals` to show it
as a message. Nothing else translates domain errors by hand.

Imports nothing from the project: every app may raise these.
"""

from __future__ import annotations

from typing import Any

INVALID_MESSAGE = "The request is invalid; see fields."


class DomainError(Exception):
    """A refusal with a message for a person.

    `status` and `code` say how the API reports it. When `field` is set (or `fields` given),
    the API reports it as a validation error on that input (`code: invalid` with `fields`);
    otherwise `message` is the error's message.
    """

    status: int = 400
    code: str = "invalid"
    field: str | None = "detail"

    def __init__(
        self,
        message: str = "",
        *,
        fields: dict[str, Any] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field
        self.fields = fields

    def __str__(self) -> str:
        return self.message

    def api_body(self) -> dict[str, Any]:
        """The `error` object of the API's error shape."""
        fields = self.fields
        if fields is None and self.field is not None:
            fields = {self.field: self.message}
        if fields is not None:
            return {"code": "invalid", "message": INVALID_MESSAGE, "fields": fields}
        return {"code": self.code, "message": self.message}


class Conflict(DomainError):
    """The request conflicts with the current state (someone else acted first, or the state
    moved on). Reported as 409."""

    status = 409
    code = "conflict"
    field = None
