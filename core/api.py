"""API plumbing shared by every app: one error shape from one exception handler."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DataError, InterfaceError, connection
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError


def _flatten(detail: Any) -> Any:
    if isinstance(detail, list):
        return [str(d) for d in detail]
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    return str(detail)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than this endpoint accepts."
    default_code = "too_large"


def is_bad_number(exc: Exception) -> bool:
    """A lookup with an id that is not a number, or out of the column's range: the client's
    mistake (400), not a server error."""
    if isinstance(exc, DataError):
        return "out of range" in str(exc)
    return isinstance(exc, ValueError | OverflowError) and "expected a number" in str(exc)


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A dependency is briefly unavailable; nothing was stored. Retry shortly."
    default_code = "unavailable"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error is `{"error": {"code", "message", "fields"?}}`.

    A refusal from a service (`core.errors.DomainError`) is rendered here, and only here.
    """
    if isinstance(exc, DomainError):
        return Response({"error": exc.api_body()}, status=exc.status)
    if isinstance(exc, DatabaseOperationalError | InterfaceError):
        # The database connection dropped mid-request: the transaction rolled back, so the
        # client can safely retry (intake is idempotent on source + external_id).
        connection.close_if_unusable_or_obsolete()
        response = drf_exception_handler(Unavailable(), context)
        assert response is not None
        response["Retry-After"] = "5"
        response.data = {"error": {"code": "unavailable", "message": Unavailable.default_detail}}
        return response
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        exc = exceptions.ParseError("Too many form fields or files in one request.")
    elif is_bad_number(exc):
        exc = exceptions.ParseError("An id in the request is not a valid number.")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    detail = getattr(exc, "detail", None)
    body: dict[str, Any] = {"code": code}
    if isinstance(exc, exceptions.ValidationError) and isinstance(detail, dict):
        body["code"] = "invalid"
        body["message"] = "The request is invalid; see fields."
        body["fields"] = _flatten(detail)
    elif isinstance(detail, list):
        body["message"] = "; ".join(str(d) for d in detail)
    else:
        body["message"] = str(detail) if detail is not None else str(exc)
        if hasattr(detail, "code") and detail.code:
            body["code"] = detail.code
    response.data = {"error": body}
    return response
