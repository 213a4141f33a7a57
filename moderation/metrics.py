"""Prometheus metrics of the moderation workflow, computed at scrape time (core.metrics lists
these collectors in SAFEGUARD_METRICS_COLLECTORS and runs each in isolation).

Each collector is one aggregate query — over the active-case partial index, the
open-escalation index, the match's list foreign key; the hashing figures count the media table
in one pass — so a scrape is a handful of round trips whatever the data (benchmarks/METRICS.md).
Labels are priorities, tiers, states and list/exchange names chosen by admins: never a person,
an item or a hash.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .matching.banks import _bank_dir  # where this machine keeps a list's match index
from .models import Case, Escalation, Exchange, HashList, Media


def _age(now: float, when: object) -> float:
    return max(0.0, now - when.timestamp()) if when is not None else 0.0  # type: ignore[attr-defined]


def collect_cases() -> Iterator[Metric]:
    """Open cases by priority: how many, the oldest's age, those past their SLA, and the
    children at immediate risk whose case nobody has claimed yet. One grouped query over the
    active-case partial index."""
    now_dt = timezone.now()
    now = now_dt.timestamp()
    breached = Q(sla_breached_at__isnull=False) | Q(sla_due_at__lt=now_dt)
    rows = (
        Case.objects.filter(active=True)
        .values("priority", "status")
        .annotate(
            n=Count("id"),
            oldest=Min("created_at"),
            breached=Count("id", filter=breached),
            risk=Count("id", filter=Q(immediate_risk=True)),
            risk_oldest=Min("created_at", filter=Q(immediate_risk=True)),
        )
        .order_by()
    )
    open_ = GaugeMetricFamily(
        "safeguard_cases_open",
        "Cases in the queue (open or in review), by priority (0 = P0) and status.",
        labels=["priority", "status"],
    )
    oldest = GaugeMetricFamily(
        "safeguard_case_oldest_open_age_seconds",
        "Age of the oldest case still in the queue, by priority (0 when none).",
        labels=["priority"],
    )
    sla = GaugeMetricFamily(
        "safeguard_cases_sla_breached",
        "Cases in the queue past their SLA due time, by priority.",
        labels=["priority"],
    )
    waiting = GaugeMetricFamily(
        "safeguard_immediate_risk_cases_waiting",
        "Cases of a child at immediate risk in the queue, by status (open = nobody holds it).",
        labels=["status"],
    )
    waiting_age = GaugeMetricFamily(
        "safeguard_immediate_risk_oldest_waiting_age_seconds",
        "Age of the oldest unclaimed immediate-risk case (0 when none).",
    )
    by_priority: dict[int, dict[str, float]] = {p: {"oldest": 0.0, "breached": 0} for p in range(5)}
    risk = {"open": 0, "in_review": 0}
    risk_oldest: float = 0.0
    seen: set[tuple[int, str]] = set()
    for row in rows:
        priority, status = row["priority"], row["status"]
        seen.add((priority, status))
        open_.add_metric([str(priority), status], row["n"])
        slot = by_priority.setdefault(priority, {"oldest": 0.0, "breached": 0})
        slot["oldest"] = max(slot["oldest"], _age(now, row["oldest"]))
        slot["breached"] += row["breached"]
        risk[status] = risk.get(status, 0) + row["risk"]
        if status == Case.Status.OPEN:
            risk_oldest = max(risk_oldest, _age(now, row["risk_oldest"]))
    for priority in sorted(by_priority):
        for status in (Case.Status.OPEN, Case.Status.IN_REVIEW):
            if (priority, status) not in seen:
                open_.add_metric([str(priority), status], 0)
        oldest.add_metric([str(priority)], by_priority[priority]["oldest"])
        sla.add_metric([str(priority)], by_priority[priority]["breached"])
    for status, n in sorted(risk.items()):
        waiting.add_metric([status], n)
    waiting_age.add_metric([], risk_oldest)
    yield from (open_, oldest, sla, waiting, waiting_age)


def collect_escalations() -> Iterator[Metric]:
    """Live escalations by tier: those still paging (nobody acknowledged), the oldest's age,
    pages sent for them, and those past their SLA. One grouped query on the open index."""
    now_dt = timezone.now()
    now = now_dt.timestamp()
    rows = (
        Escalation.objects.filter(
            status__in=[Escalation.Status.OPEN, Escalation.Status.ACKNOWLEDGED]
        )
        .values("tier", "status")
        .annotate(
            n=Count("id"),
            oldest=Min("opened_at"),
            pages=Sum("page_count"),
            breached=Count("id", filter=Q(breached_at__isnull=False) | Q(sla_due_at__lt=now_dt)),
        )
        .order_by()
    )
    unacked = GaugeMetricFamily(
        "safeguard_pages_unacknowledged",
        "Escalations still paging on-call leads (not acknowledged), by tier.",
        labels=["tier"],
    )
    unacked_age = GaugeMetricFamily(
        "safeguard_page_oldest_unacknowledged_age_seconds",
        "Age of the oldest unacknowledged escalation, by tier (0 when none).",
        labels=["tier"],
    )
    pages = GaugeMetricFamily(
        "safeguard_pages_sent_unacknowledged",
        "Pages sent so far for escalations nobody has acknowledged, by tier.",
        labels=["tier"],
    )
    breached = GaugeMetricFamily(
        "safeguard_escalations_sla_breached",
        "Live escalations (open or acknowledged) past their SLA, by tier.",
        labels=["tier"],
    )
    tiers = {t: {"n": 0, "age": 0.0, "pages": 0, "breached": 0} for t in Escalation.Tier.values}
    for row in rows:
        slot = tiers.setdefault(row["tier"], {"n": 0, "age": 0.0, "pages": 0, "breached": 0})
        slot["breached"] += row["breached"]
        if row["status"] == Escalation.Status.OPEN:
            slot["n"] += row["n"]
            slot["pages"] += row["pages"] or 0
            slot["age"] = max(slot["age"], _age(now, row["oldest"]))
    for tier, slot in sorted(tiers.items()):
        unacked.add_metric([tier], slot["n"])
        unacked_age.add_metric([tier], slot["age"])
        pages.add_metric([tier], slot["pages"])
        breached.add_metric([tier], slot["breached"])
    yield from (unacked, unacked_age, pages, breached)


def collect_hashing() -> Iterator[Metric]:
    """The hashing backlog (media pending or being hashed) and media whose hashing failed
    (reviewable without hashes; `hash_error` says why), in one aggregate query."""
    now = time.time()
    backlog_states = [Media.HashStatus.PENDING, Media.HashStatus.PROCESSING]
    row = Media.objects.aggregate(
        pending=Count("id", filter=Q(hash_status=Media.HashStatus.PENDING)),
        processing=Count("id", filter=Q(hash_status=Media.HashStatus.PROCESSING)),
        failed=Count("id", filter=Q(hash_status=Media.HashStatus.FAILED)),
        oldest=Min("created_at", filter=Q(hash_status__in=backlog_states)),
    )
    backlog = GaugeMetricFamily(
        "safeguard_hashing_backlog",
        "Media waiting to be hashed (pending) or being hashed (processing).",
        labels=["state"],
    )
    backlog.add_metric(["pending"], row["pending"])
    backlog.add_metric(["processing"], row["processing"])
    yield backlog
    yield GaugeMetricFamily(
        "safeguard_hashing_oldest_backlog_age_seconds",
        "Age of the oldest media still waiting for or in hashing (0 when none).",
        value=_age(now, row["oldest"]),
    )
    yield GaugeMetricFamily(
        "safeguard_hashing_failed_media",
        "Media whose hashing failed (recorded with a reason; the item stays reviewable).",
        value=row["failed"],
    )


def collect_hash_lists() -> Iterator[Metric]:
    """Per enabled list: matches so far (a counter: rate() is the list's match rate), when its
    contents last changed, and the age of this machine's match index for its current version."""
    now = time.time()
    lists = list(
        HashList.objects.filter(enabled=True).annotate(n_matches=Count("matches")).order_by("name")
    )
    total = CounterMetricFamily(
        "safeguard_hash_list_matches",
        "Matches made against the list (rate() over time is its match rate).",
        labels=["list", "algorithm"],
    )
    changed = GaugeMetricFamily(
        "safeguard_hash_list_updated_timestamp_seconds",
        "When the list's contents or settings last changed (Unix time).",
        labels=["list", "algorithm"],
    )
    version = GaugeMetricFamily(
        "safeguard_hash_list_version",
        "The list's version (bumped by every change of its contents).",
        labels=["list", "algorithm"],
    )
    index_age = GaugeMetricFamily(
        "safeguard_hash_list_index_age_seconds",
        "Age of this machine's match index of the list's current version (perceptual lists; "
        "absent until the first match builds it; exact lists are matched in the database).",
        labels=["list", "algorithm"],
    )
    for hash_list in lists:
        labels = [hash_list.name, hash_list.algorithm]
        total.add_metric(labels, hash_list.n_matches)
        changed.add_metric(labels, hash_list.updated_at.timestamp())
        version.add_metric(labels, hash_list.version)
        if hash_list.is_exact:
            continue
        try:
            built = _bank_dir(hash_list).stat().st_mtime
        except OSError:
            continue  # not built on this machine yet
        index_age.add_metric(labels, max(0.0, now - built))
    yield from (total, changed, version, index_age)


def collect_exchanges() -> Iterator[Metric]:
    """Per exchange: enabled, the last successful fetch, and whether it is failing now."""
    rows = Exchange.objects.order_by("name").values(
        "name", "kind", "enabled", "state", "last_success_at", "last_error_at"
    )
    last = GaugeMetricFamily(
        "safeguard_exchange_last_success_timestamp_seconds",
        "When the exchange's last fetch completed successfully (Unix time; 0: never).",
        labels=["exchange", "kind"],
    )
    enabled = GaugeMetricFamily(
        "safeguard_exchange_enabled", "1 when the exchange is enabled.", labels=["exchange", "kind"]
    )
    failing = GaugeMetricFamily(
        "safeguard_exchange_failing",
        "1 when the exchange's latest attempt failed (state failed or backing off).",
        labels=["exchange", "kind"],
    )
    for row in rows:
        labels = [row["name"], row["kind"]]
        success = row["last_success_at"]
        last.add_metric(labels, success.timestamp() if success else 0.0)
        enabled.add_metric(labels, 1 if row["enabled"] else 0)
        failing.add_metric(
            labels, 1 if row["state"] in (Exchange.State.FAILED, Exchange.State.BACKOFF) else 0
        )
    yield from (last, enabled, failing)
