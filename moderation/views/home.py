"""The home page: one page, with the panels of the user's roles; and the leads' live part."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.roles import is_admin, is_lead, is_moderator
from moderation.models import Case, Escalation, HashList
from moderation.selectors import cases_held_by, queue_counts


def _lead_live_context() -> dict[str, Any]:
    """The leads' panels that change by the minute: immediate risk (999) and open escalations.

    The home page and its live fragment (`home_live`, polled by static/js/live.js) render
    the same partial from this.
    """
    # Each case with its 999 escalations, newest first, so the panel shows where the call
    # stands (paging, acknowledged, called) and links to the checklist.
    immediate = list(
        Case.objects.filter(immediate_risk=True, active=True)
        .select_related("category", "claimed_by")
        .prefetch_related(
            Prefetch(
                "escalations",
                queryset=Escalation.objects.filter(tier=Escalation.Tier.IMMEDIATE_RISK)
                .select_related("acknowledged_by", "called_by")
                .order_by("-opened_at"),
                to_attr="risk_escalations",
            )
        )[:10]
    )
    for case in immediate:
        case.risk_escalation = case.risk_escalations[0] if case.risk_escalations else None
    return {
        "open_escalations": Escalation.objects.filter(status__in=["open", "acknowledged"]).count(),
        "immediate_risk": immediate,
        "awaiting_call": any(
            c.risk_escalation is None or c.risk_escalation.called_at is None for c in immediate
        ),
    }


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """One home page, with the panels of the user's roles."""
    user = request.user
    context: dict[str, object] = {"nav": "home"}
    if is_moderator(user):
        context["counts"] = queue_counts()
        context["my_cases"] = cases_held_by(user).select_related("category")[:10]
    if is_lead(user):
        context.update(_lead_live_context())
    if is_admin(user):
        context["hash_lists"] = HashList.objects.all()[:10]
    return render(request, "moderation/home.html", context)


@never_cache
@require_GET
@permission_required("moderation.work_escalations", raise_exception=True)
def home_live(request: HttpRequest) -> HttpResponse:
    """The leads' live panels as an HTML fragment (static/js/live.js polls it every 10 s)."""
    return render(request, "moderation/_home_live.html", _lead_live_context())
