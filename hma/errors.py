"""Refusals of the HMA API, with HMA's status codes and Safeguard's error shape.

HMA answers ``{"message": …}`` with 400 for a bad request, 403 for a bank that already exists,
404 for an unknown bank or content (OpenMediaMatch/utils/flask_utils.py, blueprints/*.py).
Here each refusal is a ``core.errors.DomainError`` with the same status, rendered by the one
exception handler as ``{"error": {"code", "message"}}``; the HMA views add HMA's top-level
``message`` beside it (hma.api).
"""

from __future__ import annotations

from core.errors import DomainError


class HmaError(DomainError):
    field = None
    code = "invalid_request"


class UnknownSignalType(HmaError):
    code = "unknown_signal_type"


class InvalidSignal(HmaError):
    code = "invalid_signal"


class UnknownContentType(HmaError):
    code = "unknown_content_type"


class UnhashableMedia(HmaError):
    """The upload could not be hashed (damaged, hostile, over a limit, or too slow)."""

    code = "unhashable_media"


class UrlFetchDisabled(HmaError):
    code = "url_fetch_disabled"


class BankNotFound(HmaError):
    status = 404
    code = "bank_not_found"


class ContentNotFound(HmaError):
    status = 404
    code = "content_not_found"


class BankExists(HmaError):
    """HMA answers 403 for a bank name that is taken (blueprints/curation.py)."""

    status = 403
    code = "bank_exists"


class ManagedInConsole(HmaError):
    """A hash list created outside this API is read-only through it."""

    status = 403
    code = "managed_in_console"


class ContentTypeMismatch(HmaError):
    """The form field names one content type and the bytes are another (a video as photo)."""

    code = "content_type_mismatch"
