"""The case review page and its actions: review (media hidden by default), reveal with a
reason, the audited media view, decide, release, renew the lease, reassign, restrict."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.pages import refusal_as_json, refusal_redirects_to
from moderation.forms import DecisionForm
from moderation.models import Case, Decision, Media
from moderation.selectors import case_detail, case_visible_to
from moderation.services.cases import case_restrict
from moderation.services.exposure import (
    MediaWithheld,
    exposure_for,
    media_open_for_view,
    media_reveal,
)
from moderation.services.queue import case_reassign, case_release, case_renew_lease
from moderation.services.review import decision_record
from moderation.views.queue import claim_next
from principles.models import HarmCategory


def get_case_for_user_or_404(request: HttpRequest, pk: int) -> Case:
    """The case with everything its page shows. 404 for cases the user may not see
    (restricted, or no role) — never 403, which would confirm the case exists."""
    try:
        return case_detail(user=request.user, pk=pk)
    except Case.DoesNotExist:
        raise Http404("No such case") from None


@never_cache
@require_GET
@permission_required("moderation.view_case", raise_exception=True)
def case_page(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_for_user_or_404(request, pk)
    held = case.is_held_by(request.user)
    categories = HarmCategory.objects.prefetch_related("principles")
    moderators = None
    if request.user.has_perm("moderation.reassign_case"):
        moderators = (
            get_user_model()
            .objects.filter(groups__name__in=["Moderator", "Safety lead"], is_active=True)
            .distinct()
        )
    return render(
        request,
        "moderation/case.html",
        {
            "nav": "queue",
            "case": case,
            "held": held,
            "exposure": exposure_for(request.user),
            "decision_form": DecisionForm(
                initial={"claimed_at": case.claimed_at.isoformat() if case.claimed_at else ""}
            ),
            "categories": categories,
            "moderators": moderators,
            "outcomes": Decision.Outcome.choices,
        },
    )


@require_POST
@permission_required("moderation.reveal_media", raise_exception=True)
@refusal_as_json
def reveal(request: HttpRequest, pk: int, media_id: int) -> JsonResponse:
    case = get_case_for_user_or_404(request, pk)
    media = get_object_or_404(Media.objects.select_related("item"), pk=media_id, item__case=case)
    media_reveal(media=media, case=case, user=request.user, reason=request.POST.get("reason", ""))
    exposure = exposure_for(request.user)
    return JsonResponse(
        {
            "url": reverse("moderation:media", args=[media.pk]),
            "mime": media.mime,
            "kind": media.kind,
            "reveals_today": exposure.reveals_today,
            "needs_break": exposure.needs_break,
        }
    )


@never_cache
@require_GET
@permission_required("moderation.reveal_media", raise_exception=True)
def media_view(request: HttpRequest, media_id: int) -> FileResponse:
    """The only way media bytes leave the system: authenticated, case-visible, just revealed,
    re-verified against the custody hash, audited, and never cached."""
    media = get_object_or_404(Media.objects.select_related("item"), pk=media_id)
    if (
        media.item.case_id is None
        or not case_visible_to(request.user).filter(pk=media.item.case_id).exists()
    ):
        raise Http404("No such media")
    try:
        handle = media_open_for_view(media=media, user=request.user)
    except MediaWithheld as exc:
        # Withheld media is "not found" to the browser, like media the user may not see.
        raise Http404(exc.message) from None
    response = FileResponse(handle, content_type=media.mime)
    response["Cache-Control"] = "no-store, private, max-age=0"
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_POST
@permission_required("moderation.decide_case", raise_exception=True)
@refusal_redirects_to("moderation:case", "pk")
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_for_user_or_404(request, pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "The decision was not recorded: "
            + "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()),
        )
        return redirect("moderation:case", pk=case.pk)
    data = form.cleaned_data
    decision_record(
        case=case,
        moderator=request.user,
        outcome=data["outcome"],
        categories=list(data["categories"]),
        rationale=data["rationale"],
        claimed_at=data["claimed_at"] or None,
    )
    messages.success(request, f"Decision recorded on {case.reference}.")
    if request.POST.get("then") == "next":
        return claim_next(request)
    return redirect("moderation:queue")


@require_POST
@permission_required("moderation.claim_case", raise_exception=True)
@refusal_redirects_to("moderation:case", "pk")
def release(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_for_user_or_404(request, pk)
    case_release(case=case, user=request.user, reason=request.POST.get("reason", ""))
    messages.info(request, f"{case.reference} went back to the queue.")
    return redirect("moderation:queue")


@require_POST
@permission_required("moderation.claim_case", raise_exception=True)
@refusal_as_json
def renew(request: HttpRequest, pk: int) -> JsonResponse:
    case = get_case_for_user_or_404(request, pk)
    case_renew_lease(case=case, user=request.user)
    return JsonResponse({"lease_expires_at": case.lease_expires_at.isoformat()})


@require_POST
@permission_required("moderation.reassign_case", raise_exception=True)
@refusal_redirects_to("moderation:case", "pk")
def reassign(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_for_user_or_404(request, pk)
    user = get_object_or_404(get_user_model(), pk=request.POST.get("user") or 0, is_active=True)
    case_reassign(case=case, to_user=user, actor=request.user)
    messages.success(request, f"{case.reference} assigned to {user.get_username()}.")
    return redirect("moderation:case", pk=case.pk)


@require_POST
@permission_required("moderation.reassign_case", raise_exception=True)
def restrict(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_for_user_or_404(request, pk)
    case_restrict(case=case, actor=request.user)
    messages.success(request, f"{case.reference} is now restricted to leads and assignees.")
    return redirect("moderation:case", pk=case.pk)
