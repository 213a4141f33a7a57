"""Exchange credentials: encrypted at rest, write-only, kept out of logs.

Credentials are sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under
SAFEGUARD_EXCHANGE_KEY. The variable may hold several comma-separated keys (MultiFernet): the
first seals, all open, so a key is rotated by putting a new one first and re-saving the
credentials. Without a key the console refuses to store credentials at all, rather than keep
them in clear. Values are opened only by the worker that fetches (and by the console when an
admin replaces one field of several), and never shown, audited or logged: `redact` scrubs them
from error messages, `redacted_logs` from the records the library and urllib3 log (the
ThreatExchange token travels in the query string, which urllib3 logs at DEBUG).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import quote, quote_plus

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from .errors import ExchangeError, redact

# Loggers whose records can carry a request's URL, headers or form: the library logs on the
# root logger, urllib3 on its own (a filter on a logger only sees records made on it).
_LOGGERS = ("", "urllib3", "urllib3.connectionpool", "urllib3.util.retry", "requests")


def _fernet() -> MultiFernet:
    keys = settings.SAFEGUARD_EXCHANGE_KEY
    if not keys:
        raise ExchangeError(
            "Exchange credentials can't be stored: SAFEGUARD_EXCHANGE_KEY is not set. Generate "
            "a key with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'` and set it in the environment of the web "
            "and worker processes.",
            field="credentials",
        )
    return MultiFernet([Fernet(key.encode()) for key in keys])


def credentials_seal(values: Mapping[str, str]) -> str:
    """The encrypted form of a set of credentials (a Fernet token, ASCII)."""
    return _fernet().encrypt(json.dumps(dict(values), sort_keys=True).encode()).decode()


def credentials_open(token: str) -> dict[str, str]:
    """The credentials sealed in `token` ({} for none)."""
    if not token:
        return {}
    try:
        data = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ExchangeError(
            "The stored credentials can't be decrypted with SAFEGUARD_EXCHANGE_KEY (was the key "
            "replaced without keeping the old one after it?). Enter the credentials again.",
            field="credentials",
        ) from None
    return {str(k): str(v) for k, v in data.items()}


def secrets_of(credentials: Mapping[str, str]) -> list[str]:
    """The values to scrub: every credential, and its URL-encoded form (query strings)."""
    found: set[str] = set()
    for value in credentials.values():
        if len(value) >= 4:  # a shorter "secret" would scrub ordinary words
            found |= {value, quote(value, safe=""), quote_plus(value)}
    return sorted(found, key=len, reverse=True)


class _RedactFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:  # a traceback's messages can hold a URL with a token
            trace = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(trace, self.secrets)
            record.exc_info = None
        return True


@contextmanager
def redacted_logs(secrets: list[str]) -> Iterator[None]:
    """While fetching or sending: scrub the secrets from what the library and HTTP stack log."""
    if not secrets:
        yield
        return
    redactor = _RedactFilter(secrets)
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    for logger in loggers:
        logger.addFilter(redactor)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redactor)
