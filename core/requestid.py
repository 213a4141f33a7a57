"""One request id per request, carried into the Celery tasks it enqueues and into every log line.

1. `RequestIdMiddleware` (outermost) takes a sane incoming `X-Request-ID` (what a load balancer
   or the platform calling the API set) or makes a new one, keeps it in a context variable for
   the request, and echoes it in the response's `X-Request-ID` header.
2. `before_task_publish`: a task sent while a request id is current carries it in the message
   headers (`safeguard_request_id`), so work a request hands to a worker is found under the
   same id. Tasks enqueued by tasks inherit their parent's id the same way.
3. `task_prerun` / `task_postrun`: the worker makes the message's id current for the task's run
   (a new one for tasks that came without one, e.g. from beat) and restores what was before.
4. `RequestIdFilter` puts `request_id` (and `task_id`, `task_name` inside a task) on every log
   record, so both log formats (core.logs) carry them.

An incoming id is only accepted when it looks like an id (letters, digits, `-`, `_`, `.`,
8 to 64 characters): anything else — free text, newlines that would forge log lines, a name or
an email address — is replaced, so the header can never put personal data into the logs.
Imports nothing from the project (config/celery.py connects the signals before Django is set up).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
TASK_HEADER = "safeguard_request_id"
# Ids from outside: what UUIDs, hex trace ids and load balancers' ids look like; no '@' or
# spaces, so not an email address or a sentence. Must start with a letter or digit.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,63}")

request_id_var: ContextVar[str | None] = ContextVar("safeguard_request_id", default=None)
_task_var: ContextVar[tuple[str, str] | None] = ContextVar("safeguard_task", default=None)
# The context tokens of the tasks running in this process, by task id, for task_postrun.
_task_tokens: dict[str, tuple[Token[str | None], Token[tuple[str, str] | None]]] = {}


def new_request_id() -> str:
    return os.urandom(16).hex()  # a random 128-bit id, like uuid4().hex without the object


def sane_request_id(value: str | None) -> str | None:
    """The incoming id if it looks like an id, else None."""
    if value and _SANE.fullmatch(value):
        return value
    return None


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdMiddleware:
    """First in MIDDLEWARE: everything after it, and everything it logs, knows the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = sane_request_id(request.META.get(META_KEY)) or new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        # Not reset on the way out: Django logs 4xx/5xx responses ("Not Found: …") after the
        # middleware chain has returned. request_finished (the response closed) clears it.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def _clear_request_id(**_: Any) -> None:
    request_id_var.set(None)


request_finished.connect(_clear_request_id, dispatch_uid="safeguard-request-id")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` ("-" outside a request or task) and, inside a Celery task, `task_id`
    and `task_name` to each record. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        task = _task_var.get()
        if task is not None:
            record.task_id, record.task_name = task
        return True


# --- Celery signal handlers (connected in config/celery.py) -------------------------------------


def on_before_task_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Stamp the current request id on an outgoing task message."""
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def on_task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Make the message's request id current for the task's run."""
    if task_id is None:
        return
    incoming = getattr(getattr(task, "request", None), TASK_HEADER, None)
    # An eager task (embedded default) runs inside the request that sent it: keep that id.
    request_id = sane_request_id(incoming) or request_id_var.get() or new_request_id()
    name = str(getattr(task, "name", "") or "")
    _task_tokens[task_id] = (request_id_var.set(request_id), _task_var.set((task_id, name)))


def on_task_postrun(task_id: str | None = None, **_: Any) -> None:
    tokens = _task_tokens.pop(task_id or "", None)
    if tokens is None:
        return
    request_token, task_token = tokens
    try:
        _task_var.reset(task_token)
        request_id_var.reset(request_token)
    except ValueError:  # set in another context (should not happen): just clear
        _task_var.set(None)
        request_id_var.set(None)
