"""The home page: one page, with the panels of the user's roles."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.roles import is_admin, is_lead, is_moderator
from moderation.models import Case, Escalation, HashList
from moderation.selectors import cases_held_by, queue_counts


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
        context["open_escalations"] = Escalation.objects.filter(
            status__in=["open", "acknowledged"]
        ).count()
        context["immediate_risk"] = Case.objects.filter(
            immediate_risk=True, active=True
        ).select_related("category", "claimed_by")[:10]
    if is_admin(user):
        context["hash_lists"] = HashList.objects.all()[:10]
    return render(request, "moderation/home.html", context)
