from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.roles import is_admin, is_lead, is_moderator
from principles.models import HarmCategory, Priority

from .forms import HashImportForm, HashListForm
from .hashlists import HashListError, hash_import_start, hash_list_upsert
from .models import Case, Escalation, HashImport, HashList
from .selectors import QUEUE_PAGE_SIZE, cases_held_by, match_summaries, queue_counts, queue_page


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
@permission_required("moderation.view_hashlist", raise_exception=True)
def hash_list_index(request: HttpRequest) -> HttpResponse:
    lists = HashList.objects.annotate(size=Count("hashes")).order_by("name")
    imports = HashImport.objects.select_related("hash_list").order_by("-created_at")[:20]
    return render(
        request,
        "moderation/hash_lists.html",
        {
            "nav": "hash_lists",
            "lists": lists,
            "imports": imports,
            "list_form": HashListForm(),
            "import_form": HashImportForm(),
        },
    )


@require_POST
@permission_required("moderation.add_hashlist", raise_exception=True)
def hash_list_create(request: HttpRequest) -> HttpResponse:
    form = HashListForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            hash_list, created = hash_list_upsert(
                name=data["name"],
                algorithm=data["algorithm"],
                provider=data["provider"],
                threshold=data["threshold"],
                verified=data["verified"],
                actor=request.user,
            )
        except HashListError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{'Created' if created else 'Updated'} {hash_list.name}.")
    else:
        messages.error(
            request,
            "The list was not saved: "
            + "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()),
        )
    return redirect("moderation:hash_lists")


@require_POST
@permission_required("moderation.change_hashlist", raise_exception=True)
def hash_list_import(request: HttpRequest, pk: int) -> HttpResponse:
    hash_list = get_object_or_404(HashList, pk=pk)
    form = HashImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a CSV file to import.")
        return redirect("moderation:hash_lists")
    try:
        hash_import_start(
            hash_list=hash_list,
            upload=form.cleaned_data["file"],
            actor=request.user,
            created_by=request.user,
        )
    except HashListError as exc:
        messages.error(request, str(exc))
        return redirect("moderation:hash_lists")
    messages.success(request, f"Import into {hash_list.name} started.")
    return redirect("moderation:hash_lists")


@require_GET
@permission_required("moderation.view_hashlist", raise_exception=True)
def hash_import_progress(request: HttpRequest, pk: int) -> JsonResponse:
    imp = get_object_or_404(HashImport, pk=pk)
    return JsonResponse(
        {
            "id": imp.pk,
            "status": imp.status,
            "percent": imp.progress_percent,
            "processed": imp.processed_rows,
            "total": imp.total_rows,
            "added": imp.added,
            "updated": imp.updated,
            "invalid": imp.invalid_count,
        }
    )


@require_GET
@permission_required("moderation.view_case", raise_exception=True)
def queue_counts_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(queue_counts())
