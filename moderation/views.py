from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.roles import is_admin, is_lead, is_moderator
from principles.models import HarmCategory, Priority

from .models import Case, HashImport, HashList
from .selectors import QUEUE_PAGE_SIZE, queue_counts, queue_page


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """One home page, with the panels of the user's roles."""
    user = request.user
    context: dict[str, object] = {"nav": "home"}
    if is_moderator(user):
        context["counts"] = queue_counts()
        context["my_cases"] = Case.objects.filter(
            claimed_by=user, status=Case.Status.IN_REVIEW
        ).select_related("category")[:10]
    if is_lead(user):
        context["immediate_risk"] = Case.objects.filter(
            immediate_risk=True, status__in=["open", "in_review"]
        ).select_related("category", "claimed_by")[:10]
    if is_admin(user):
        context["hash_lists"] = HashList.objects.all()[:10]
    return render(request, "moderation/home.html", context)


def _parse_after(raw: str | None) -> tuple[int, str, int] | None:
    if not raw:
        return None
    try:
        p, due, pk = raw.split("|")
        return int(p), due, int(pk)
    except ValueError:
        return None


@require_GET
@permission_required("moderation.view_case", raise_exception=True)
def queue(request: HttpRequest) -> HttpResponse:
    params = request.GET
    try:
        priority = int(params["priority"]) if params.get("priority") else None
    except ValueError:
        priority = None
    cases = queue_page(
        user=request.user,
        status=params.get("status", "active"),
        priority=priority,
        category=params.get("category") or None,
        source=params.get("source") or None,
        mine=params.get("mine") == "1",
        after=_parse_after(params.get("after")),
    )
    next_after = None
    if len(cases) == QUEUE_PAGE_SIZE:
        last = cases[-1]
        next_after = f"{last.priority}|{last.sla_due_at.isoformat()}|{last.pk}"
    query = params.copy()
    query.pop("after", None)
    return render(
        request,
        "moderation/queue.html",
        {
            "nav": "queue",
            "cases": cases,
            "counts": queue_counts(),
            "now": timezone.now(),
            "categories": HarmCategory.objects.all(),
            "priorities": Priority.choices,
            "filters": params,
            "base_query": query.urlencode(),
            "next_after": next_after,
        },
    )


@require_GET
@permission_required("moderation.view_hashlist", raise_exception=True)
def hash_list_index(request: HttpRequest) -> HttpResponse:
    lists = HashList.objects.annotate(size=Count("hashes")).order_by("name")
    imports = HashImport.objects.select_related("hash_list").order_by("-created_at")[:20]
    return render(
        request,
        "moderation/hash_lists.html",
        {"nav": "hash_lists", "lists": lists, "imports": imports},
    )
