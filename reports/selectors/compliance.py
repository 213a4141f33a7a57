"""Interim Code compliance metrics for the console: the reporting period, per-principle
metrics, coverage (an honest gap list), operations figures and QA agreement. Reads only;
aggregates only.

Every metric is computed by its own function and guarded, so one metric without data (or
failing) yields "unavailable" rather than failing a whole page or report.

Imports models (reports, moderation, principles) and core only: services, views, the API and
commands build on it.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.errors import DomainError
from moderation.models import (
    Case,
    Decision,
    Escalation,
    EscalationRule,
    Flag,
    HashList,
    Item,
    OnCallShift,
    Reveal,
)
from moderation.timings import timings_by_priority
from principles.models import Principle

from ..models import Destination, QaReview, ReferralPacket, TransparencyReport

logger = logging.getLogger(__name__)

ACTIONED = ("remove", "remove_and_report")
REFERRED = ("exported", "acknowledged")


class PeriodError(DomainError, ValueError):
    """A period that cannot be reported on, with a message that says why.

    Still a ValueError, as it was before it became a DomainError, for callers that catch that.
    """


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time.min, tzinfo=UTC)

    def label(self) -> str:
        return f"{self.start.isoformat()} to {(self.end - timedelta(days=1)).isoformat()}"


def parse_period(start: str | None, end: str | None, *, default_days: int = 30) -> Period:
    """Parse ISO dates (end inclusive for people, exclusive inside). Empty → the last N days."""
    today = timezone.now().date()
    try:
        start_d = date.fromisoformat(start) if start else today - timedelta(days=default_days)
        end_d = date.fromisoformat(end) if end else today
    except ValueError:
        raise PeriodError("Dates must look like 2026-01-31.") from None
    if end_d < start_d:
        raise PeriodError(f"The period ends ({end_d}) before it starts ({start_d}).")
    if (end_d - start_d).days > 3660:
        raise PeriodError("The period is longer than ten years.")
    return Period(start_d, end_d + timedelta(days=1))


def guarded(name: str, fn: Callable[[], Any]) -> Any:
    """`fn()`, or "unavailable" (logged) if it fails: one metric never fails a page."""
    try:
        return fn()
    except Exception:
        logger.exception("Metric %s failed", name)
        return "unavailable"


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- Per principle ----------------------------------------------------------------------------


def principle_metrics(principle: Principle, period: Period) -> dict[str, Any]:
    """Items flagged, actioned, referred; median/p90 hours to action; SLA breaches."""
    codes = list(principle.harm_categories.values_list("code", flat=True))
    n = principle.number
    in_period = {"created_at__gte": period.start_at, "created_at__lt": period.end_at}

    def flagged() -> int:
        return Item.objects.filter(flags__category__code__in=codes, **in_period).distinct().count()

    def decisions() -> list[Decision]:
        return [
            d
            for d in Decision.objects.filter(outcome__in=ACTIONED, **in_period).select_related(
                "case"
            )
            if n in (d.principles or [])
        ]

    def actioned() -> int:
        return len(decisions())

    def hours_to_action() -> dict[str, float | None]:
        hours = [(d.created_at - d.case.created_at).total_seconds() / 3600 for d in decisions()]
        return {
            "median": round(statistics.median(hours), 2) if hours else None,
            "p90": round(_percentile(hours, 0.9), 2) if hours else None,
        }

    def referred() -> int:
        packets = ReferralPacket.objects.filter(
            status__in=REFERRED, exported_at__gte=period.start_at, exported_at__lt=period.end_at
        )
        if n == 12:
            return packets.count()
        return (
            packets.filter(
                Q(cases__category__code__in=codes) | Q(cases__decisions__categories__code__in=codes)
            )
            .distinct()
            .count()
        )

    def breaches() -> int:
        return Case.objects.filter(
            category__code__in=codes,
            sla_breached_at__gte=period.start_at,
            sla_breached_at__lt=period.end_at,
        ).count()

    return {
        "items_flagged": guarded("items_flagged", flagged),
        "actioned": guarded("actioned", actioned),
        "referred": guarded("referred", referred),
        "hours_to_action": guarded("hours_to_action", hours_to_action),
        "sla_breaches": guarded("sla_breaches", breaches),
    }


def principle_daily_flags(principle: Principle, period: Period) -> list[tuple[str, int]]:
    codes = list(principle.harm_categories.values_list("code", flat=True))
    rows = (
        Flag.objects.filter(
            category__code__in=codes, created_at__gte=period.start_at, created_at__lt=period.end_at
        )
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    return [(r["day"].isoformat(), r["n"]) for r in rows]


# --- Coverage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    number: int
    title: str
    status: str  # "working", "configured", "gap"
    evidence: list[str]


def _activity(codes: list[str], since: datetime) -> int:
    return Flag.objects.filter(category__code__in=codes, created_at__gte=since).count()


def coverage(*, now: datetime | None = None) -> list[Coverage]:
    """Which principles have working workflows, computed from configuration and data.

    "working": configured and used in the last 90 days; "configured": set up but unused;
    "gap": nothing in this installation implements it.
    """
    now = now or timezone.now()
    since = now - timedelta(days=90)
    enabled_lists = HashList.objects.filter(enabled=True)
    rules = list(EscalationRule.objects.filter(enabled=True))
    out: list[Coverage] = []
    for principle in Principle.objects.prefetch_related("harm_categories").order_by("number"):
        codes = [c.code for c in principle.harm_categories.all()]
        evidence: list[str] = []
        configured = False
        active = False
        if codes:
            evidence.append(f"harm categories: {', '.join(codes)}")
            configured = True
            used = _activity(codes, since)
            if used:
                active = True
                evidence.append(f"{used} flag(s) in the last 90 days")
        rule_hits = [
            r.name
            for r in rules
            if any(
                c.get("field") == "category"
                and (c.get("value") in codes or set(c.get("value") or []) & set(codes))
                for c in r.conditions
                if isinstance(c, dict)
            )
        ]
        if rule_hits:
            evidence.append(f"escalation rules: {', '.join(rule_hits)}")
        n = principle.number
        if n == 1:
            lists = list(enabled_lists.values_list("name", flat=True))
            configured = configured and bool(lists)
            evidence.append(
                f"enabled hash lists: {', '.join(lists)}"
                if lists
                else "no enabled hash list: known material cannot be matched"
            )
        if n == 10:
            external = list(
                enabled_lists.exclude(provider="internal").values_list("name", flat=True)
            )
            configured = bool(external)
            evidence.append(
                f"lists shared by other organisations: {', '.join(external)}"
                if external
                else "no hash list from another organisation"
            )
            active = configured
        if n == 11:
            recent = TransparencyReport.objects.filter(
                status="done", created_at__gte=now - timedelta(days=366)
            )
            configured = True
            active = recent.exists()
            evidence.append(
                "transparency report generated in the last year"
                if active
                else "no transparency report in the last year"
            )
        if n == 12:
            destinations = Destination.objects.filter(enabled=True).count()
            rota = OnCallShift.objects.exists()
            configured = destinations > 0
            active = ReferralPacket.objects.filter(
                status__in=REFERRED, exported_at__gte=since
            ).exists()
            evidence.append(f"{destinations} enabled referral destination(s)")
            evidence.append(
                "on-call rota configured" if rota else "no on-call rota: every safety lead is paged"
            )
        if n == 9:
            evidence.append(
                "no workflow implements this principle in Safeguard; it is met by "
                "the organisation's own threat assessment"
            )
            configured = active = False
        status = "working" if configured and active else "configured" if configured else "gap"
        out.append(Coverage(n, principle.title, status, evidence))
    return out


# --- Operations dashboard ----------------------------------------------------------------------


def operations(period: Period) -> dict[str, Any]:
    in_period = {"created_at__gte": period.start_at, "created_at__lt": period.end_at}

    def queue_depth() -> dict[int, int]:
        rows = Case.objects.filter(active=True).values("priority").annotate(n=Count("id"))
        depth = {p: 0 for p in range(5)}
        depth.update({r["priority"]: r["n"] for r in rows})
        return depth

    def throughput() -> list[tuple[str, int]]:
        rows = (
            Decision.objects.filter(**in_period)
            .annotate(day=TruncDate("created_at"))
            .values("day")
            .annotate(n=Count("id"))
            .order_by("day")
        )
        return [(r["day"].isoformat(), r["n"]) for r in rows]

    def outcomes() -> dict[str, int]:
        return dict(Counter(Decision.objects.filter(**in_period).values_list("outcome", flat=True)))

    def referrals() -> dict[str, int]:
        rows = (
            ReferralPacket.objects.filter(**in_period)
            .values("destination__name")
            .annotate(n=Count("id"))
        )
        return {r["destination__name"]: r["n"] for r in rows}

    def timings() -> dict[str, float | None]:
        escalations = list(
            Escalation.objects.filter(
                tier="immediate_risk",
                **{"opened_at__gte": period.start_at, "opened_at__lt": period.end_at},
            )
        )

        def median_minutes(pairs: list[tuple[datetime | None, datetime | None]]) -> float | None:
            values = [(b - a).total_seconds() / 60 for a, b in pairs if a and b]
            return round(statistics.median(values), 1) if values else None

        return {
            "count": len(escalations),
            "flag_to_acknowledge_min": median_minutes(
                [(e.opened_at, e.acknowledged_at) for e in escalations]
            ),
            "acknowledge_to_call_min": median_minutes(
                [(e.acknowledged_at, e.called_at) for e in escalations]
            ),
            "call_to_referral_min": median_minutes(
                [(e.called_at, e.referred_at) for e in escalations]
            ),
        }

    def exposure() -> dict[str, int]:
        per_user = list(
            Reveal.objects.filter(**in_period)
            .values("user")
            .annotate(n=Count("id"))
            .values_list("n", flat=True)
        )
        return {
            "reveals": sum(per_user),
            "people": len(per_user),
            "past_soft_limit_days": sum(
                1 for n in per_user if n >= settings.SAFEGUARD_REVEAL_SOFT_LIMIT
            ),
        }

    def breaches() -> int:
        return Case.objects.filter(
            sla_breached_at__gte=period.start_at, sla_breached_at__lt=period.end_at
        ).count()

    return {
        "queue_depth": guarded("queue_depth", queue_depth),
        "sla_breaches": guarded("sla_breaches", breaches),
        "throughput": guarded("throughput", throughput),
        "outcomes": guarded("outcomes", outcomes),
        "referrals": guarded("referrals", referrals),
        "immediate_risk_timings": guarded("timings", timings),
        "exposure": guarded("exposure", exposure),
        # Per priority, for the cases decided in the period (moderation.timings).
        "assignment_timings": guarded(
            "assignment_timings",
            lambda: timings_by_priority(start=period.start_at, end=period.end_at),
        ),
    }


# --- QA (accuracy) ------------------------------------------------------------------------------


def qa_agreement(period: Period) -> list[dict[str, Any]]:
    """Agreement rate of blind second reviews with the original decision, per category."""
    reviews = (
        QaReview.objects.filter(completed_at__gte=period.start_at, completed_at__lt=period.end_at)
        .select_related("decision")
        .prefetch_related("decision__categories")
    )
    per: dict[str, list[bool]] = {}
    for review in reviews:
        agreed = review.outcome == review.decision.outcome
        for category in review.decision.categories.all() or [None]:
            per.setdefault(category.code if category else "uncategorised", []).append(agreed)
    return [
        {
            "category": code,
            "reviews": len(v),
            "agreed": sum(v),
            "agreement": round(sum(v) / len(v), 3),
        }
        for code, v in sorted(per.items())
    ]
