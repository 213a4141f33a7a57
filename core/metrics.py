"""Prometheus metrics: what is measured per request, what the workers count, and the scrape.

Three sources, each chosen for where its numbers live:

1. **Requests** (`RequestMetricsMiddleware`): one counter and one latency histogram, labelled
   by method, URL pattern (never the raw path: ids would explode the series) and status.
   Within noise of a full request (+7 µs, 1.005x; benchmarks/METRICS.md). gunicorn runs
   several processes, so with `PROMETHEUS_MULTIPROC_DIR` set prometheus-client keeps these
   values in memory-mapped files that every process writes and the scrape adds up (its
   multiprocess mode); without it (runserver, tests) they live in the process.
2. **Celery task outcomes** (`on_task_*` signal handlers): workers run on other machines than
   the web, so prometheus-client's multiprocess mode (one shared directory) cannot reach them.
   Each outcome is one HINCRBY in the broker's Redis instead, read back at scrape time: a
   counter every web process sees alike, that survives worker restarts, for the cost of one
   pipelined round trip per task (a task already costs 0.6 to 8 ms of broker work).
3. **State** (`collect_*` collectors listed in `SAFEGUARD_METRICS_COLLECTORS`): queue depths,
   cases, pages, hashing, lists, exchanges, packets, the audit chain — computed at scrape time
   by one aggregate query per collector (7 in all), so they are never stale and nothing has to
   keep them up to date. Each app owns its collector (`moderation.metrics`, `reports.metrics`,
   `core.audit_metrics`), so core never imports the apps above it. A collector that fails is
   reported as `safeguard_metrics_collector_up{collector} 0` and the rest of the scrape still
   answers.

Imports nothing from the project's models (config/celery.py connects the signal handlers
before Django is set up).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, ResolverMatch, resolve
from django.utils.module_loading import import_string
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client import Histogram as _Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

QUEUES = ("hashing", "default", "packets")
# kombu's Redis transport keeps a queue's messages of priority 3, 6 and 9 in sibling lists.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
TASKS_KEY = "safeguard:metrics:task_outcomes"
WORKERS_KEY = "safeguard:metrics:workers_seen"
# A worker that finished nothing for this long is not counted as alive. Beat sends work every
# few seconds (the audit sealer, the queue vacuum), so a live worker is seen well within it.
WORKER_ALIVE_SECONDS = 120
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# --- 1. Requests ---------------------------------------------------------------------------------

REQUESTS = Counter(
    "safeguard_http_requests",
    "HTTP requests answered, by method, URL pattern and status code.",
    ["method", "route", "status"],
    registry=None,
)
REQUEST_LATENCY = _Histogram(
    "safeguard_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it, by method and pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
# Label children by key: Counter.labels() takes a lock on every call, a dict lookup does not.
_request_children: dict[tuple[str, str, str], Any] = {}
_latency_children: dict[tuple[str, str], Any] = {}


def _label(match: ResolverMatch) -> str:
    return "/" + match.route if match.route else (match.view_name or "<unnamed>")


@lru_cache(maxsize=1024)
def _route_of_path(path: str) -> str:
    """The pattern of a path answered before URL resolution (the HMA lookup fast path, a
    redirect to HTTPS). Cached: those are a few hot paths; the cache bounds what junk costs."""
    try:
        return _label(resolve(path))
    except Resolver404:
        return "<unmatched>"


def route_of_path(path: str) -> str:
    """The route label of a path answered before Django's URL resolution (hma.wsgi)."""
    return _route_of_path(path)


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return _route_of_path(request.path_info) if match is None else _label(match)


class RequestMetricsMiddleware:
    """Counts every response and times it. Near the top of MIDDLEWARE, so refusals made by
    the middlewares below (login redirects, rate limits, CSRF) are counted too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in _KNOWN_METHODS else "other"
        route = _route(request)
        key = (method, route, str(response.status_code))
        counter = _request_children.get(key)
        if counter is None:
            counter = _request_children[key] = REQUESTS.labels(*key)
        counter.inc()
        latency = _latency_children.get(key[:2])
        if latency is None:
            latency = _latency_children[key[:2]] = REQUEST_LATENCY.labels(method, route)
        latency.observe(elapsed)
        if logger.isEnabledFor(logging.DEBUG):
            # An access line by URL pattern: never the path or query (ids, search terms, hashes).
            logger.debug("%s %s %s %.1f ms", method, route, key[2], elapsed * 1000)
        return response


# --- 2. Celery task outcomes (signal handlers, connected in config/celery.py) --------------------

_local_outcomes: dict[str, int] = {}


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    import redis

    # Short timeouts: counting an outcome must never hold up a task or a request.
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def broker_redis() -> Any | None:
    url = settings.CELERY_BROKER_URL
    return _redis(url) if url else None


def record_task_outcome(task_name: str, outcome: str, *, hostname: str = "") -> None:
    """Count one task outcome (success, failure, retry, revoked) where every process sees it."""
    field = f"{task_name}|{outcome}"
    client = broker_redis()
    if client is None:  # embedded default: tasks run in this process
        _local_outcomes[field] = _local_outcomes.get(field, 0) + 1
        return
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(TASKS_KEY, field, 1)
        if hostname:
            pipe.hset(WORKERS_KEY, hostname, f"{time.time():.3f}")
        pipe.execute()
    except Exception:  # noqa: BLE001 — a metric must never fail the task it describes
        logger.warning("Could not record a task outcome metric (broker unreachable)")


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or sender or "unknown")


def _hostname(sender: Any) -> str:
    request = getattr(sender, "request", None)
    return str(getattr(request, "hostname", "") or "")


def on_task_success(sender: Any = None, **_: Any) -> None:
    record_task_outcome(_task_name(sender), "success", hostname=_hostname(sender))


def on_task_failure(sender: Any = None, **_: Any) -> None:
    record_task_outcome(_task_name(sender), "failure", hostname=_hostname(sender))


def on_task_retry(sender: Any = None, **_: Any) -> None:
    record_task_outcome(_task_name(sender), "retry", hostname=_hostname(sender))


def on_task_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    name = getattr(request, "task", None) or _task_name(sender)
    record_task_outcome(str(name), "revoked")


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    """A worker that starts is seen at once (before its first task)."""
    hostname = str(getattr(sender, "hostname", "") or "")
    client = broker_redis()
    if client is None or not hostname:
        return
    try:
        client.hset(WORKERS_KEY, hostname, f"{time.time():.3f}")
    except Exception:  # noqa: BLE001
        logger.warning("Could not record the worker's start for metrics (broker unreachable)")


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    """A worker that stops cleanly is no longer counted (a killed one ages out)."""
    hostname = str(getattr(sender, "hostname", "") or "")
    client = broker_redis()
    if client is None or not hostname:
        return
    try:
        client.hdel(WORKERS_KEY, hostname)
    except Exception:  # noqa: BLE001
        logger.warning("Could not record the worker's stop for metrics (broker unreachable)")


def collect_celery() -> Iterator[Metric]:
    """Queue depths (LLEN of each queue and its priority siblings), messages reserved by
    workers, task outcomes and live workers: one pipelined round trip to the broker."""
    depth = GaugeMetricFamily(
        "safeguard_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"]
    )
    unacked = GaugeMetricFamily(
        "safeguard_celery_unacked_messages",
        "Messages taken by workers and not yet acknowledged (running or prefetched).",
    )
    outcomes = CounterMetricFamily(
        "safeguard_celery_tasks",
        "Celery tasks finished, by task name and outcome (success, failure, retry, revoked).",
        labels=["task", "outcome"],
    )
    workers = GaugeMetricFamily(
        "safeguard_celery_workers_alive",
        f"Workers that started or finished a task in the last {WORKER_ALIVE_SECONDS} s.",
    )
    last_seen = GaugeMetricFamily(
        "safeguard_celery_worker_last_seen_timestamp_seconds",
        "When any worker last started or finished a task (Unix time; 0: never).",
    )
    client = broker_redis()
    if client is None:
        for queue in QUEUES:
            depth.add_metric([queue], 0)
        task_counts = dict(_local_outcomes)
        seen: dict[str, float] = {}
        unacked.add_metric([], 0)
    else:
        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEPARATOR}{step}")
        pipe.hlen("unacked")
        pipe.hgetall(TASKS_KEY)
        pipe.hgetall(WORKERS_KEY)
        results = pipe.execute()
        per_queue = 1 + len(_PRIORITY_STEPS)
        for i, queue in enumerate(QUEUES):
            depth.add_metric([queue], sum(results[i * per_queue : (i + 1) * per_queue]))
        unacked.add_metric([], results[len(QUEUES) * per_queue])
        task_counts = {k.decode(): int(v) for k, v in results[-2].items()}
        seen = {k.decode(): float(v) for k, v in results[-1].items()}
    for field, count in sorted(task_counts.items()):
        name, _, outcome = field.rpartition("|")
        outcomes.add_metric([name, outcome], count)
    now = time.time()
    workers.add_metric([], sum(1 for t in seen.values() if now - t <= WORKER_ALIVE_SECONDS))
    last_seen.add_metric([], max(seen.values(), default=0))
    yield from (depth, unacked, outcomes, workers, last_seen)


# --- 3. The scrape -------------------------------------------------------------------------------


class Collector(Protocol):
    def __call__(self) -> Iterable[Metric]: ...


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _StateCollector:
    """Runs each configured collector, isolating failures and timing each."""

    def __init__(self, collectors: list[tuple[str, Collector]]) -> None:
        self.collectors = collectors

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time only

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "safeguard_metrics_collector_up",
            "1 when the collector answered in this scrape, 0 when it failed (see the log).",
            labels=["collector"],
        )
        duration = GaugeMetricFamily(
            "safeguard_metrics_collector_duration_seconds",
            "Time the collector took in this scrape.",
            labels=["collector"],
        )
        for name, collector in self.collectors:
            started = time.perf_counter()
            try:
                metrics = list(collector())
            except Exception:
                logger.exception("Metrics collector %s failed", name)
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
                yield from metrics
            duration.add_metric([name], time.perf_counter() - started)
        yield up
        yield duration


class _RequestCollector:
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from REQUESTS.collect()
        yield from REQUEST_LATENCY.collect()


def configured_collectors() -> list[tuple[str, Collector]]:
    return [(path, import_string(path)) for path in settings.SAFEGUARD_METRICS_COLLECTORS]


def render() -> tuple[bytes, str]:
    """The exposition: request metrics (from every web process in multiprocess mode), then
    each configured collector's state, in the Prometheus text format."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_RequestCollector())  # type: ignore[arg-type]
    registry.register(_StateCollector(configured_collectors()))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
