"""The review queue: the queue page and its live counts, claiming the next case, and bulk
action on verified known material (from metadata alone, without viewing)."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.pages import refusal_redirects_to
from moderation.forms import BulkDecisionForm
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
