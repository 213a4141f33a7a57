"""What can go wrong with an exchange: refusals of a configuration, and how a fetch ends."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

from core.errors import DomainError

REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret replaced."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class ExchangeError(DomainError):
    """A configuration the console refuses, with a message an admin can act on."""


class FetchProblem(Exception):
    """A fetch that could not go on; the message is safe to show (secrets redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedPage(FetchProblem):
    """The source sent a page that can't be read or holds an invalid record: the page is
    refused whole, nothing of it applied, and the checkpoint stays before it."""


class SourceUnavailable(FetchProblem):
    """Worth retrying: the source was unreachable or answered 429 / 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceRefused(FetchProblem):
    """Not worth retrying until someone acts: credentials refused, missing, or another 4xx."""


class ClaimLost(Exception):
    """Another worker holds the exchange now (this run's lease expired): stop quietly."""


def problem_of(exc: Exception, secrets: Iterable[str]) -> FetchProblem:
    """What an exception raised while talking to a source means for the fetch: retry later
    (429, 5xx, unreachable), stop until someone acts (401/403, other 4xx), or the page is
    malformed (anything the library could not read). Messages have the secrets redacted — an
    HTTP error's message holds its URL, and ThreatExchange's token is in the query string."""
    if isinstance(exc, FetchProblem):
        return exc
    text = redact(f"{type(exc).__name__}: {exc}", secrets)[:500]
    if isinstance(exc, json.JSONDecodeError | requests.exceptions.JSONDecodeError):
        return MalformedPage(f"The source sent a page that is not valid JSON ({text}).")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            return SourceRefused(f"The source refused the credentials (HTTP {status}).")
        if status == 429 or status >= 500:
            return SourceUnavailable(
                f"The source answered HTTP {status}.", retry_after=retry_after(exc.response)
            )
        return SourceRefused(f"The source answered HTTP {status} ({text}).")
    if isinstance(exc, requests.exceptions.RetryError):
        return SourceUnavailable(f"The source kept answering 429 or 5xx through retries ({text}).")
    if isinstance(exc, requests.RequestException):
        return SourceUnavailable(f"Could not reach the source ({text}).")
    return MalformedPage(f"The source sent a page that could not be read ({text}).")


def retry_after(response: requests.Response) -> float | None:
    """The response's Retry-After in seconds (delta-seconds or an HTTP date), if any."""
    raw = (response.headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(tz=UTC)).total_seconds())
