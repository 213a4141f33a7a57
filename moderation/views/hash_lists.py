"""Hash list pages: lists and recent imports, create a list, upload an import, its progress."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.pages import refusal_redirects_to
from moderation.forms import HashImportForm, HashListForm
from moderation.models import HashImport, HashList, KnownHash
from moderation.selectors import list_precision, quarantined_hashes
from moderation.services.hashlists import hash_import_start, hash_list_upsert
from moderation.services.quarantine import known_hash_review


@require_GET
@permission_required("moderation.view_hashlist", raise_exception=True)
def hash_list_index(request: HttpRequest) -> HttpResponse:
    precision = list_precision()
    lists = list(HashList.objects.annotate(size=Count("hashes")).order_by("name"))
    for hash_list in lists:
        share, verdicts = precision.get(hash_list.pk, (None, 0))
        hash_list.precision_label = (  # type: ignore[attr-defined]
            f"{100 * share:.0f}% of {verdicts}" if share is not None else "—"
        )
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
            # A vPDQ list reads videos (vPDQ text or JSON lines); the others read hashes.
            "formats": [c for c in HashImport.Format.choices if c[0] != HashImport.Format.VPDQ],
            "video_formats": [
                c
                for c in HashImport.Format.choices
                if c[0] in (HashImport.Format.VPDQ, HashImport.Format.JSONL)
            ],
            "quarantined": quarantined_hashes().count(),
        },
    )


@require_POST
@permission_required("moderation.add_hashlist", raise_exception=True)
@refusal_redirects_to("moderation:hash_lists")
def hash_list_create(request: HttpRequest) -> HttpResponse:
    form = HashListForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "The list was not saved: "
            + "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()),
        )
        return redirect("moderation:hash_lists")
    data = form.cleaned_data
    hash_list, created = hash_list_upsert(
        name=data["name"],
        algorithm=data["algorithm"],
        provider=data["provider"],
        threshold=data["threshold"],
        verified=data["verified"],
        actor=request.user,
    )
    messages.success(request, f"{'Created' if created else 'Updated'} {hash_list.name}.")
    return redirect("moderation:hash_lists")


@require_POST
@permission_required("moderation.change_hashlist", raise_exception=True)
@refusal_redirects_to("moderation:hash_lists")
def hash_list_import(request: HttpRequest, pk: int) -> HttpResponse:
    hash_list = get_object_or_404(HashList, pk=pk)
    form = HashImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a file to import and its format.")
        return redirect("moderation:hash_lists")
    hash_import_start(
        hash_list=hash_list,
        upload=form.cleaned_data["file"],
        actor=request.user,
        created_by=request.user,
        fmt=form.cleaned_data["format"] or HashImport.Format.CSV,
        sync=form.cleaned_data["sync"],
    )
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
            "withdrawn": imp.withdrawn,
            "status_display": imp.get_status_display(),
            "error": imp.error,
            "first_errors": imp.invalid[:5],
        }
    )


@require_GET
@permission_required("moderation.review_decision", raise_exception=True)
def quarantine_index(request: HttpRequest) -> HttpResponse:
    """Leads review list hashes in quarantine: their reason, verdicts and matches."""
    return render(
        request,
        "moderation/quarantine.html",
        {"nav": "hash_lists", "hashes": quarantined_hashes()[:500]},
    )


@require_POST
@permission_required("moderation.review_decision", raise_exception=True)
@refusal_redirects_to("moderation:quarantine")
def quarantine_review(request: HttpRequest, pk: int) -> HttpResponse:
    known_hash = get_object_or_404(KnownHash.objects.select_related("hash_list"), pk=pk)
    action = request.POST.get("action", "")
    known_hash_review(known_hash=known_hash, lead=request.user, action=action)
    verb = "released back to matching" if action == "release" else "withdrawn"
    messages.success(request, f"Entry {known_hash.pk} of {known_hash.hash_list.name} {verb}.")
    return redirect("moderation:quarantine")
