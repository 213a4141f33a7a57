"""How console pages report a refused action (a `core.errors.DomainError`): in one place.

A form-posting page shows the refusal as a message and redirects where the person can act on
it; a page's fetch() endpoint answers `{"error": message}` with the refusal's status. Views
call services and let refusals propagate; these decorators translate them.

Imports only core: every app's views use it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from .errors import DomainError

View = Callable[..., HttpResponse]


def refusal_redirects_to(url_name: str, *url_kwargs: str) -> Callable[[View], View]:
    """On a refusal, show its message and redirect to `url_name`, reversed with the view's
    URL arguments named in `url_kwargs` (e.g. `refusal_redirects_to("moderation:case", "pk")`).
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except DomainError as exc:
                messages.error(request, exc.message)
                return redirect(url_name, **{name: kwargs[name] for name in url_kwargs})

        return wrapped

    return decorate


def refusal_as_json(view: View) -> View:
    """On a refusal, answer `{"error": message}` with the refusal's HTTP status."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DomainError as exc:
            return JsonResponse({"error": exc.message}, status=exc.status)

    return wrapped
