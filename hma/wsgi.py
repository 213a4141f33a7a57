"""HMA's read-only lookups answered at the WSGI entry point, before Django builds a response.

``GET /m/raw_lookup`` and ``GET /m/lookup`` with ``Authorization: Token`` are the hot routes of
an HMA client (benchmarks/HMA.md: ≥ 1,000 lookups/s at 10 M hashes on two cores). Under
gunicorn (config.wsgi wraps Django's handler in ``HmaLookupWsgi``) this answers them with the
checks of hma.fastpath, without Django's middleware chain, response object and header
handling. Nothing else changes:

1. Only ``GET`` on those two exact paths with an ``Authorization`` header is looked at; every
   other request goes straight to Django.
2. Django's request signals are sent as its handler sends them (``request_started`` before:
   stale database connections closed, health check re-armed; ``request_finished`` when the
   server closes the answer), the request is Django's own ``WSGIRequest`` (so
   ``ALLOWED_HOSTS``, ``SECURE_SSL_REDIRECT``, ``SECURE_PROXY_SSL_HEADER`` and the query are
   read exactly as the full stack reads them), and the outermost middleware's work is done
   here: the request id (core.requestid: accepted or made, current for logging, echoed in
   ``X-Request-ID``) and the request metrics (core.metrics: same counter and histogram, same
   labels).
3. hma.fastpath.lookup_body decides; the answer is the DRF view's bytes with the headers of
   hma.fastpath.LookupHeaders, plus ``Content-Length`` (as CommonMiddleware adds it on the
   full stack).
4. Anything that is not that clean 200 — any refusal, bad input, or an exception — is handed
   to Django unchanged, marked (hma.fastpath.TRIED) so the fast-path middleware does not try
   it a second time; the full stack then answers (401/403/429/400/500 as before). Such a
   request may see ``request_started`` twice and be counted twice against its rate limit,
   which only happens once the limit is reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_finished, request_started

from core.metrics import REQUEST_LATENCY, REQUESTS, route_of_path
from core.requestid import HEADER, META_KEY, new_request_id, request_id_var, sane_request_id

from .fastpath import ROUTES, TRIED, LookupHeaders, Route, lookup_body

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Answer(list[bytes]):
    """The body as the WSGI server iterates it; its close() ends the request as Django's
    response does (request_finished: connections and caches closed, the request id cleared)."""

    __slots__ = ("request", "sender")

    def close(self) -> None:
        self.request.close()
        request_finished.send(sender=self.sender)


class HmaLookupWsgi:
    """A WSGI application: the lookups of the module docstring, and ``app`` (Django) for
    everything else."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.sender = type(app)  # what Django's handler sends its request signals as
        self.headers = LookupHeaders()
        # (method, route, status) → the counter child, (method, route) → the histogram child,
        # by path: two dict reads per answer instead of resolving and labelling.
        self.metrics: dict[str, tuple[Any, Any]] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = ROUTES.get(environ.get("PATH_INFO", ""))
        if (
            route is None
            or environ.get("REQUEST_METHOD") != "GET"
            or "HTTP_AUTHORIZATION" not in environ
            or TRIED in environ
        ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        answer = self.answer(environ, route)
        if answer is None:
            environ[TRIED] = True
            return self.app(environ, start_response)
        request, body, headers = answer
        start_response("200 OK", headers)
        counter, latency = self._metrics(request.path_info)
        counter.inc()
        latency.observe(time.perf_counter() - started)
        result = _Answer((body,))
        result.request, result.sender = request, self.sender
        return result

    def answer(
        self, environ: dict[str, Any], route: Route
    ) -> tuple[WSGIRequest, bytes, list[tuple[str, str]]] | None:
        """(request, body, headers) of the 200 answer, or None to leave it to Django."""
        request_started.send(sender=self.sender, environ=environ)
        request = WSGIRequest(environ)
        request_id = sane_request_id(environ.get(META_KEY)) or new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        request_id_var.set(request_id)
        try:
            body = lookup_body(request, route)
        except Exception:
            # Django's stack answers it (and logs it) as it would without this path.
            logger.debug("HMA lookup left to Django after an error", exc_info=True)
            body = None
        if body is None:
            request_id_var.set(None)
            return None
        headers = [
            *self.headers.get(request, route),
            ("Content-Length", str(len(body))),
            (HEADER, request_id),
        ]
        return request, body, headers

    def _metrics(self, path: str) -> tuple[Any, Any]:
        children = self.metrics.get(path)
        if children is None:
            label = route_of_path(path)
            children = self.metrics[path] = (
                REQUESTS.labels("GET", label, "200"),
                REQUEST_LATENCY.labels("GET", label),
            )
        return children
