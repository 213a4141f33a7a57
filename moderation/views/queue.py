"""The review queue: the queue page and its live counts, claiming the next case, bulk action
on verified known material (from metadata alone, without viewing), and each person's saved
filters (of this page and of search).

Filters only change what the page lists: "Next case" always claims the head of the whole queue
(immediate risk, priority, SLA), so nobody can cherry-pick work by filtering."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.pages import refusal_redirects_to
from moderation.forms import BulkDecisionForm
from moderation.models import SavedFilter
from moderation.selectors import (
    QUEUE_PAGE_SIZE,
    case_visible_to,
    cases_held_by,
    known_material_cases,
    known_material_evidence,
    match_summaries,
    queue_counts,
    queue_page,
)
from moderation.services.queue import case_claim_next
from moderation.services.review import case_bulk_decide
from moderation.services.saved_filters import (
    SavedFilterRefused,
    saved_filter_create,
    saved_filter_delete,
    saved_filter_params,
)
from principles.models import HarmCategory, Priority


def _parse_after(raw: str | None) -> tuple[int, datetime, int] | None:
    if not raw:
        return None
    try:
        p, due, pk = raw.split("|")
        return int(p), datetime.fromisoformat(due), int(pk)
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
    summaries = match_summaries([c.pk for c in cases])
    for case in cases:
        case.summary = summaries.get(case.pk, {})
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
            "saved_filters": saved_filters_for(request.user),
            "saved_page": SavedFilter.Page.QUEUE,
        },
    )


@require_GET
@permission_required("moderation.view_case", raise_exception=True)
def queue_counts_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(queue_counts())


@require_POST
@permission_required("moderation.claim_case", raise_exception=True)
def claim_next(request: HttpRequest) -> HttpResponse:
    # One case at a time: "Next" while holding one takes the moderator back to it, and says
    # so rather than silently reloading the page they are on.
    held = cases_held_by(request.user).filter(lease_expires_at__gt=timezone.now()).first()
    if held is not None:
        messages.warning(
            request,
            f"You still hold case {held.reference}. Decide it or release it (u) "
            "before taking the next one.",
        )
        return redirect("moderation:case", pk=held.pk)
    case = case_claim_next(user=request.user)
    if case is None:
        messages.info(request, "The queue is empty. Nothing to claim.")
        return redirect("moderation:queue")
    return redirect("moderation:case", pk=case.pk)


@require_GET
@permission_required("moderation.decide_case", raise_exception=True)
def known_material(request: HttpRequest) -> HttpResponse:
    cases = list(
        case_visible_to(request.user)
        .filter(pk__in=known_material_cases().values("pk"))
        .select_related("category")[:200]
    )
    evidence = known_material_evidence([c.pk for c in cases])
    for case in cases:
        case.evidence = evidence.get(case.pk, [])
    return render(
        request,
        "moderation/known_material.html",
        {"nav": "queue", "cases": cases, "form": BulkDecisionForm()},
    )


@require_POST
@permission_required("moderation.decide_case", raise_exception=True)
@refusal_redirects_to("moderation:known_material")
def bulk_decide(request: HttpRequest) -> HttpResponse:
    form = BulkDecisionForm(request.POST)
    ids = [int(i) for i in request.POST.getlist("case") if i.isdigit()]
    visible = list(case_visible_to(request.user).filter(pk__in=ids).values_list("pk", flat=True))
    if not visible:
        messages.error(request, "Select at least one case.")
        return redirect("moderation:known_material")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("moderation:known_material")
    decided = case_bulk_decide(
        case_ids=visible,
        moderator=request.user,
        outcome=form.cleaned_data["outcome"],
        rationale=form.cleaned_data["rationale"],
    )
    messages.success(request, f"{len(decided)} known-material case(s) actioned without viewing.")
    return redirect("moderation:known_material")


def _page_url(page: str, params: dict[str, str]) -> str:
    query = urlencode(params)
    return reverse(f"moderation:{page}") + (f"?{query}" if query else "")


def saved_filters_for(user: Any) -> list[SavedFilter]:
    """The person's own saved filters (nobody else's, ever), each with the link that opens it."""
    saved = list(SavedFilter.objects.filter(user=user))
    for f in saved:
        f.url = _page_url(f.page, saved_filter_params(f.page, f.params))
    return saved


@require_POST
@permission_required("moderation.view_case", raise_exception=True)
def saved_filter_create_view(request: HttpRequest) -> HttpResponse:
    page = request.POST.get("page", "")
    if page not in SavedFilter.Page.values:
        page = SavedFilter.Page.QUEUE
    # The page's current GET parameters, as the page put them in the form.
    params = QueryDict(request.POST.get("query", "")).dict()
    try:
        saved = saved_filter_create(
            user=request.user, name=request.POST.get("name", ""), page=page, params=params
        )
    except SavedFilterRefused as exc:
        # Back to the page and filters the person was on (core.pages' decorator can only
        # redirect to a fixed page, which would lose the search they meant to save).
        messages.error(request, exc.message)
        return redirect(_page_url(page, saved_filter_params(page, params)))
    messages.success(request, f"Saved filter “{saved.name}”.")
    return redirect(_page_url(saved.page, saved.params))


@require_POST
@permission_required("moderation.view_case", raise_exception=True)
def saved_filter_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    # Someone else's filter is a 404, exactly as one that doesn't exist.
    saved = get_object_or_404(SavedFilter, pk=pk, user=request.user)
    saved_filter_delete(saved_filter=saved, user=request.user)
    messages.success(request, f"Deleted saved filter “{saved.name}”.")
    back = request.POST.get("back", "")
    return redirect(f"moderation:{back if back in SavedFilter.Page.values else 'queue'}")
