"""The case review pages: claim, review (media hidden by default), reveal, decide, release."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from guardian.shortcuts import assign_perm

from core.audit import audit_record
from principles.models import HarmCategory

from .forms import BulkDecisionForm, DecisionForm, ExposureLiftForm
from .models import Case, Decision, Media
from .queue import CaseNotHeld, case_claim_next, case_reassign, case_release, case_renew_lease
from .review import (
    ReviewError,
    case_bulk_decide,
    decision_record,
    exposure_aggregate,
    exposure_for,
    exposure_lift,
    known_material_cases,
    media_reveal,
    reveal_grants_view,
)
from .selectors import case_detail, case_visible_to


def _get_case_for_user(request: HttpRequest, pk: int) -> Case:
    """404 for cases the user may not see (restricted, or no role) — never 403, which would
    confirm the case exists."""
    try:
        return case_detail(user=request.user, pk=pk)
    except Case.DoesNotExist:
        raise Http404("No such case") from None


@require_POST
@permission_required("moderation.claim_case", raise_exception=True)
def claim_next(request: HttpRequest) -> HttpResponse:
    case = case_claim_next(user=request.user)
    if case is None:
        messages.info(request, "The queue is empty. Nothing to claim.")
        return redirect("moderation:queue")
    return redirect("moderation:case", pk=case.pk)


@never_cache
@require_GET
@permission_required("moderation.view_case", raise_exception=True)
def case_page(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
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
def reveal(request: HttpRequest, pk: int, media_id: int) -> JsonResponse:
    case = _get_case_for_user(request, pk)
    media = get_object_or_404(Media.objects.select_related("item"), pk=media_id, item__case=case)
    try:
        media_reveal(
            media=media, case=case, user=request.user, reason=request.POST.get("reason", "")
        )
    except ReviewError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
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
    if media.purged_at is not None:
        raise Http404("This evidence was deleted under the retention policy")
    if not reveal_grants_view(media=media, user=request.user):
        raise Http404("Reveal this media with a reason first")
    from .media.hashing import file_digests

    if file_digests(media.file.path)[0] != media.sha256:
        audit_record(actor=request.user, verb="media.custody_mismatch", obj=media, data={})
        raise Http404("Evidence integrity check failed; the incident was logged")
    audit_record(
        actor=request.user, verb="media.viewed", obj=media, data={"case": media.item.case_id}
    )
    response = FileResponse(media.file.open("rb"), content_type=media.mime)
    response["Cache-Control"] = "no-store, private, max-age=0"
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_POST
@permission_required("moderation.decide_case", raise_exception=True)
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "The decision was not recorded: "
            + "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()),
        )
        return redirect("moderation:case", pk=case.pk)
    data = form.cleaned_data
    try:
        decision_record(
            case=case,
            moderator=request.user,
            outcome=data["outcome"],
            categories=list(data["categories"]),
            rationale=data["rationale"],
            claimed_at=data["claimed_at"] or None,
        )
    except (CaseNotHeld, ReviewError) as exc:
        messages.error(request, str(exc))
        return redirect("moderation:case", pk=case.pk)
    messages.success(request, f"Decision recorded on {case.reference}.")
    if request.POST.get("then") == "next":
        return claim_next(request)
    return redirect("moderation:queue")


@require_POST
@permission_required("moderation.claim_case", raise_exception=True)
def release(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    try:
        case_release(case=case, user=request.user, reason=request.POST.get("reason", ""))
    except CaseNotHeld as exc:
        messages.error(request, str(exc))
        return redirect("moderation:case", pk=case.pk)
    messages.info(request, f"{case.reference} went back to the queue.")
    return redirect("moderation:queue")


@require_POST
@permission_required("moderation.claim_case", raise_exception=True)
def renew(request: HttpRequest, pk: int) -> JsonResponse:
    case = _get_case_for_user(request, pk)
    try:
        case_renew_lease(case=case, user=request.user)
    except CaseNotHeld as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"lease_expires_at": case.lease_expires_at.isoformat()})


@require_POST
@permission_required("moderation.reassign_case", raise_exception=True)
def reassign(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    user = get_object_or_404(get_user_model(), pk=request.POST.get("user") or 0, is_active=True)
    if not user.has_perm("moderation.claim_case"):
        messages.error(request, f"{user.get_username()} cannot work cases.")
        return redirect("moderation:case", pk=case.pk)
    if case.restricted:
        # A restricted case opens only for leads and the people it is assigned to.
        assign_perm("moderation.work_restricted_case", user, case)
    try:
        case_reassign(case=case, to_user=user, actor=request.user)
    except CaseNotHeld as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{case.reference} assigned to {user.get_username()}.")
    return redirect("moderation:case", pk=case.pk)


@require_POST
@permission_required("moderation.reassign_case", raise_exception=True)
def restrict(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    Case.objects.filter(pk=case.pk).update(restricted=True)
    audit_record(actor=request.user, verb="case.restricted", obj=case, data={})
    messages.success(request, f"{case.reference} is now restricted to leads and assignees.")
    return redirect("moderation:case", pk=case.pk)


@require_GET
@permission_required("moderation.decide_case", raise_exception=True)
def known_material(request: HttpRequest) -> HttpResponse:
    cases = (
        case_visible_to(request.user)
        .filter(pk__in=known_material_cases().values("pk"))
        .select_related("category")[:200]
    )
    return render(
        request,
        "moderation/known_material.html",
        {"nav": "queue", "cases": cases, "form": BulkDecisionForm()},
    )


@require_POST
@permission_required("moderation.decide_case", raise_exception=True)
def bulk_decide(request: HttpRequest) -> HttpResponse:
    form = BulkDecisionForm(request.POST)
    ids = [int(i) for i in request.POST.getlist("case") if i.isdigit()]
    visible = list(case_visible_to(request.user).filter(pk__in=ids).values_list("pk", flat=True))
    if not form.is_valid() or not visible:
        messages.error(request, "Choose cases and an outcome.")
        return redirect("moderation:known_material")
    try:
        decided = case_bulk_decide(
            case_ids=visible,
            moderator=request.user,
            outcome=form.cleaned_data["outcome"],
            rationale=form.cleaned_data["rationale"],
        )
    except ReviewError as exc:
        messages.error(request, str(exc))
        return redirect("moderation:known_material")
    messages.success(request, f"{len(decided)} known-material case(s) actioned without viewing.")
    return redirect("moderation:known_material")


@require_GET
@permission_required("moderation.reassign_case", raise_exception=True)
def exposure_overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "moderation/exposure.html",
        {"nav": "exposure", "aggregate": exposure_aggregate(), "form": ExposureLiftForm()},
    )


@require_POST
@permission_required("moderation.reassign_case", raise_exception=True)
def exposure_lift_view(request: HttpRequest) -> HttpResponse:
    form = ExposureLiftForm(request.POST)
    if form.is_valid():
        try:
            exposure_lift(
                user=form.cleaned_data["user"],
                lead=request.user,
                extra_reveals=form.cleaned_data["extra_reveals"],
                reason=form.cleaned_data["reason"],
            )
        except ReviewError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Limit lifted for today.")
    else:
        messages.error(request, "Choose a person, a number of reveals and a reason.")
    return redirect("moderation:exposure")
