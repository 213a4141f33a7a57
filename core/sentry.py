"""Optional error reporting through sentry-sdk, only when `SENTRY_DSN` is set.

sentry-sdk is imported only then (it is an optional extra: `pip install '.[sentry]'`), and
configured to send as little as an error report needs: no personal data
(`send_default_pii=False`), no request bodies, no local variables of stack frames (they hold
form fields, hashes and file names), and a `before_send` that strips what the SDK would still
attach — request bodies, cookies, query strings (a search or a lookup carries hashes in the
URL), every header that authenticates, and the user. Imports nothing from the project: the
settings module calls `sentry_init` at start-up.
"""

from __future__ import annotations

from typing import Any

FILTERED = "[Filtered]"
# Headers that prove who the caller is, or carry the session; compared case-insensitively.
_SECRET_HEADER_PARTS = ("authorization", "cookie", "token", "api-key", "apikey", "csrf", "secret")


def _secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_HEADER_PARTS)


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """`before_send`: remove request bodies, cookies, query strings, authenticating headers,
    the user and frame variables from an event. Returns the event (never drops one)."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string"):
            if key in request:
                request[key] = FILTERED
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: (FILTERED if _secret_header(name) else value)
                for name, value in headers.items()
            }
        elif isinstance(headers, list):  # [[name, value], …] in some SDK versions
            request["headers"] = [
                [name, FILTERED if _secret_header(str(name)) else value] for name, value in headers
            ]
        env = request.get("env")
        if isinstance(env, dict):
            env.pop("REMOTE_ADDR", None)
    event.pop("user", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    return event


def sentry_init(*, dsn: str, environment: str, release: str = "") -> None:
    """Start error reporting (web and workers: Django and Celery integrations auto-enable)."""
    import sentry_sdk  # optional dependency: imported only when a DSN is configured

    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=release or None,
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        before_send=scrub_event,  # type: ignore[arg-type]
        traces_sample_rate=0.0,
    )
