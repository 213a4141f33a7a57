from __future__ import annotations

from django.db.models import QuerySet

from .models import PROVENANCE_SHORT_LABELS, Principle


def principle_list() -> QuerySet[Principle]:
    return Principle.objects.prefetch_related("harm_categories").order_by("number")


def principle_labels() -> dict[int, str]:
    """A short, honest label per principle number, for pages and referral packets:
    e.g. {1: "checked against the Voluntary Principles (2020)", 8: "wording unverified",
    12: "Safeguard's summary of the reporting duty"}."""
    rows = Principle.objects.order_by("number").values_list("number", "provenance")
    return {number: PROVENANCE_SHORT_LABELS.get(p, p) for number, p in rows}
