"""The case review page and its actions: review (media hidden by default), reveal with a
reason, the audited media and contact-sheet frame views, decide, release, renew the lease,
reassign, restrict."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.evidence_crypto import EvidenceReader
from core.pages import refusal_as_json, refusal_redirects_to
from core.roles import is_lead
from moderation.forms import DecisionForm
from moderation.models import Case, Decision, Escalation, Match, Media, MediaFrame
from moderation.selectors import case_detail, case_visible_to
from moderation.services.cases import case_restrict
from moderation.services.exposure import (
    MediaWithheld,
    exposure_for,
    media_frame_open_for_view,
    media_open_for_view,
    media_reveal,
    repeat_reveals,
)
from moderation.services.quarantine import match_verdict_record
from moderation.services.queue import case_reassign, case_release, case_renew_lease
from moderation.services.review import decision_record
from moderation.timings import case_timings
from moderation.views.queue import claim_next
from moderation.views.reported_user import reported_user
from moderation.views.video import ItemReview, video_review
from principles.models import HarmCategory


def get_case_for_user_or_404(request: HttpRequest, pk: int) -> Case:
    """The case with everything its page shows. 404 for cases the user may not see
    (restricted, or no role) — never 403, which would confirm the case exists."""
    try:
        return case_detail(user=request.user, pk=pk)
    except Case.DoesNotExist:
        raise Http404("No such case") from None


def _item_reviews(case: Case) -> list[ItemReview]:
    reviews = []
    for item in case.items.all():
        media = getattr(item, "media", None)
        video = video_review(media) if media is not None and media.has_frames else None
        reviews.append(ItemReview(item, video))
    return reviews


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
    risk_escalation = None
    if case.immediate_risk and request.user.has_perm("moderation.work_escalations"):
        risk_escalation = (
            case.escalations.filter(tier=Escalation.Tier.IMMEDIATE_RISK)
            .select_related("called_by")
            .order_by("-opened_at")
            .first()
        )
    reviews = _item_reviews(case)
    # A decided case's media asks before it is revealed again (the reveal form shows why).
    repeats = repeat_reveals(case=case, user=request.user)
    for review in reviews:
        media = getattr(review.item, "media", None)
        if media is not None:
            media.repeat_reveal = repeats.get(media.pk)
    # The reported user's personal data (IP, email, phone, linked accounts) is for leads and
    # admins: for anyone else it is not even put in the template's context.
    subject_panel = reported_user([r.item for r in reviews]) if is_lead(request.user) else None
    return render(
        request,
        "moderation/case.html",
        {
            "nav": "queue",
            "case": case,
            "risk_escalation": risk_escalation,
            "items": reviews,
            "reported_user": subject_panel,
            "held": held,
            "exposure": exposure_for(request.user),
            "decision_form": DecisionForm(
                initial={"claimed_at": case.claimed_at.isoformat() if case.claimed_at else ""}
            ),
            "categories": categories,
            "moderators": moderators,
            "outcomes": Decision.Outcome.choices,
            "timings": case_timings(case),
        },
    )


@require_POST
@permission_required("moderation.reveal_media", raise_exception=True)
@refusal_as_json
def reveal(request: HttpRequest, pk: int, media_id: int) -> JsonResponse:
    """Reveal a case's media — or, with `frame`, one frame of a video's contact sheet — with a
    reason; answer the URL that serves it for the next few minutes."""
    case = get_case_for_user_or_404(request, pk)
    media = get_object_or_404(Media.objects.select_related("item"), pk=media_id, item__case=case)
    frame = None
    frame_id = request.POST.get("frame", "")
    if frame_id:
        if not frame_id.isdigit():
            raise Http404("No such frame")
        frame = get_object_or_404(MediaFrame, pk=int(frame_id), media=media)
    media_reveal(
        media=media,
        case=case,
        user=request.user,
        reason=request.POST.get("reason", ""),
        frame=frame,
        confirm_repeat=request.POST.get("confirm_repeat") in ("1", "on", "yes", "true"),
    )
    exposure = exposure_for(request.user)
    body: dict[str, Any] = {
        "url": reverse("moderation:media", args=[media.pk]),
        "mime": media.mime,
        "kind": media.kind,
        "reveals_today": exposure.reveals_today,
        "needs_break": exposure.needs_break,
    }
    if frame is not None:
        body.update(
            url=reverse("moderation:media_frame", args=[media.pk, frame.pk]),
            mime="image/jpeg",
            kind="frame",
            frame=frame.pk,
        )
    return JsonResponse(body)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_RANGE = 8 * 1024 * 1024  # a video player asks for more as it plays


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The [start, end] of a single-range `Range: bytes=…` header within `size` bytes, or None
    to send the whole file (no header, several ranges, or one we can't satisfy)."""
    match = _RANGE.match(header.strip())
    if match is None or size == 0 or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:  # a suffix: the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start > end or start >= size:
        return None
    return start, min(end, start + _MAX_RANGE - 1)


def _evidence_response(
    handle: EvidenceReader, content_type: str, request: HttpRequest | None = None
) -> HttpResponse:
    """Evidence bytes for the page to show and forget: never cached, never sniffed as another
    type, shown inline, and sandboxed if opened as a document of its own. A single byte range
    is served as 206, so a video player can seek without fetching the whole file again."""
    size = handle.size  # of the plaintext: the reader decrypts only the chunks asked for
    wanted = _byte_range(request.headers.get("Range", ""), size) if request else None
    response: HttpResponse
    if wanted is None:
        response = FileResponse(handle, content_type=content_type)
    else:
        start, end = wanted
        with handle:
            handle.seek(start)
            response = HttpResponse(handle.read(end - start + 1), content_type=content_type)
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "no-store, private, max-age=0"
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _case_of_media_visible(request: HttpRequest, media: Media) -> bool:
    case_id = media.item.case_id
    return case_id is not None and case_visible_to(request.user).filter(pk=case_id).exists()


@never_cache
@require_GET
@permission_required("moderation.reveal_media", raise_exception=True)
def media_view(request: HttpRequest, media_id: int) -> HttpResponse:
    """The only way media bytes leave the system: authenticated, case-visible, just revealed,
    re-verified against the custody hash, audited, and never cached."""
    media = get_object_or_404(Media.objects.select_related("item"), pk=media_id)
    if not _case_of_media_visible(request, media):
        raise Http404("No such media")
    try:
        handle = media_open_for_view(media=media, user=request.user)
    except MediaWithheld as exc:
        # Withheld media is "not found" to the browser, like media the user may not see.
        raise Http404(exc.message) from None
    return _evidence_response(handle, media.mime, request)


@never_cache
@require_GET
@permission_required("moderation.reveal_media", raise_exception=True)
def media_frame(request: HttpRequest, media_id: int, frame_id: int) -> HttpResponse:
    """One contact-sheet frame of a video, as the media view serves the file: case-visible,
    revealed by this user just now (that frame or the whole video), audited, never cached."""
    frame = get_object_or_404(
        MediaFrame.objects.select_related("media__item"), pk=frame_id, media_id=media_id
    )
    if not _case_of_media_visible(request, frame.media):
        raise Http404("No such frame")
    try:
        handle = media_frame_open_for_view(frame=frame, user=request.user)
    except MediaWithheld as exc:
        raise Http404(exc.message) from None
    return _evidence_response(handle, "image/jpeg")


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
@permission_required("moderation.decide_case", raise_exception=True)
@refusal_redirects_to("moderation:case", "pk")
def match_verdict(request: HttpRequest, pk: int, match_id: int) -> HttpResponse:
    """A reviewer says whether a hash match is a true or a false match."""
    case = get_case_for_user_or_404(request, pk)
    match = get_object_or_404(
        Match.objects.select_related("media__item"), pk=match_id, media__item__case=case
    )
    match_verdict_record(match=match, user=request.user, verdict=request.POST.get("verdict", ""))
    messages.success(request, f"Verdict recorded: {match.get_verdict_display().lower()}.")
    return redirect("moderation:case", pk=case.pk)


@require_POST
@permission_required("moderation.reassign_case", raise_exception=True)
def restrict(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_for_user_or_404(request, pk)
    case_restrict(case=case, actor=request.user)
    messages.success(request, f"{case.reference} is now restricted to leads and assignees.")
    return redirect("moderation:case", pk=case.pk)
