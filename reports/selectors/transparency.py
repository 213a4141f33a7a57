"""Transparency report aggregates (principle 11): counts per principle and category, outcomes,
referrals by destination kind, timings; small counts suppressed. No content, no identifiers of
people or accounts. Reads only.

Imports models and `reports.selectors.compliance` (the period and per-principle metrics).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count

from moderation.models import Decision, Escalation, Flag, Item
from principles.models import HarmCategory, Principle

from ..models import ReferralPacket
from .compliance import REFERRED, Period, guarded, principle_metrics


def suppress(value: Any, threshold: int) -> Any:
    """Counts from 1 up to threshold-1 are shown as "<threshold" (0 is safe to show)."""
    if isinstance(value, int) and 0 < value < threshold:
        return f"<{threshold}"
    if isinstance(value, dict):
        return {k: suppress(v, threshold) for k, v in value.items()}
    return value


def transparency_metrics(
    period: Period, *, threshold: int, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Aggregates only: counts per principle and category, outcomes, referrals by destination
    kind, timings. No content, no identifiers of people or accounts."""
    step = progress or (lambda _: None)
    in_period = {"created_at__gte": period.start_at, "created_at__lt": period.end_at}
    principles: dict[str, Any] = {}
    for i, principle in enumerate(Principle.objects.order_by("number")):
        m = principle_metrics(principle, period)
        principles[str(principle.number)] = {
            "title": principle.title,
            "items_flagged": m["items_flagged"],
            "actioned": m["actioned"],
            "referred": m["referred"],
            "median_hours_to_action": m["hours_to_action"]["median"]
            if isinstance(m["hours_to_action"], dict)
            else "unavailable",
            "sla_breaches": m["sla_breaches"],
        }
        step(10 + 5 * i)
    categories = {
        c.code: guarded(
            c.code,
            lambda c=c: (
                Flag.objects.filter(category=c, **in_period).values("item").distinct().count()
            ),
        )
        for c in HarmCategory.objects.all()
    }
    step(75)
    outcomes = guarded(
        "outcomes",
        lambda: dict(
            Counter(Decision.objects.filter(**in_period).values_list("outcome", flat=True))
        ),
    )
    referrals = guarded(
        "referrals",
        lambda: {
            r["destination__kind"]: r["n"]
            for r in ReferralPacket.objects.filter(
                status__in=REFERRED, exported_at__gte=period.start_at, exported_at__lt=period.end_at
            )
            .values("destination__kind")
            .annotate(n=Count("id"))
        },
    )
    step(90)
    raw = {
        "items_received": guarded("items", lambda: Item.objects.filter(**in_period).count()),
        "items_by_category": categories,
        "decisions_by_outcome": outcomes,
        "referrals_by_destination_kind": referrals,
        "immediate_risk_escalations": guarded(
            "ir",
            lambda: Escalation.objects.filter(
                tier="immediate_risk", opened_at__gte=period.start_at, opened_at__lt=period.end_at
            ).count(),
        ),
        "principles": principles,
    }
    return {
        "period": {
            "start": period.start.isoformat(),
            "end": (period.end - timedelta(days=1)).isoformat(),
        },
        "organisation": settings.SAFEGUARD_ORG_NAME,
        "suppression_threshold": threshold,
        "metrics": suppress(raw, threshold),
        "methodology": METHODOLOGY.format(threshold=threshold, largest_hidden=threshold - 1),
    }


METHODOLOGY = (
    "Counts cover items flagged to Safeguard, moderation decisions, referral packets exported to "
    "authorities and immediate-risk escalations opened in the period (UTC). An item counts once "
    "per harm category it was flagged for; a principle's items are those flagged for a harm "
    "category mapped to it. 'Actioned' counts removal decisions whose principles include the "
    "principle. Times to action are from the case's creation to the decision. Counts from 1 to "
    "{largest_hidden} are shown as '<{threshold}' so that small numbers cannot identify anyone. "
    "The report contains no content and no personal data."
)


def flatten_for_csv(report: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [
        ("period_start", report["period"]["start"]),
        ("period_end", report["period"]["end"]),
        ("suppression_threshold", str(report["suppression_threshold"])),
    ]

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            rows.append((prefix, "" if value is None else str(value)))

    walk("", report["metrics"])
    return rows
