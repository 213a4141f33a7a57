"""Leads' escalations board and the 999 checklist: acknowledge, record the call, resolve; and
the "child at immediate risk" action on a case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Case as When_
from django.db.models import IntegerField, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.pages import refusal_redirects_to
from moderation.forces import uk_police_forces
from moderation.models import Escalation
from moderation.services.escalations import (
    case_mark_immediate_risk,
    escalation_acknowledge,
    escalation_record_call,
    escalation_resolve,
    escalation_timings,
)
from moderation.views.cases import get_case_for_user_or_404


@require_POST
@permission_required("moderation.mark_immediate_risk", raise_exception=True)
def mark_immediate_risk(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_for_user_or_404(request, pk)
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Confirm that a child may be at immediate risk.")
        return redirect("moderation:case", pk=case.pk)
    case_mark_immediate_risk(case=case, actor=request.user, reason=request.POST.get("reason", ""))
    messages.warning(
        request,
        f"{case.reference} is marked: a child at immediate risk. "
        "On-call safety leads are being paged. If you can, call 999 now.",
    )
    return redirect("moderation:case", pk=case.pk)


def _board_queryset() -> Any:
    return (
        Escalation.objects.filter(status__in=["open", "acknowledged"])
        .select_related("case", "acknowledged_by", "rule")
        .annotate(
            urgent=When_(
                When(tier="immediate_risk", then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("urgent", "sla_due_at")
    )


def _board_context() -> dict[str, Any]:
    """What the board shows; the page and its live fragment render the same partial."""
    recent = (
        Escalation.objects.filter(status="resolved")
        .select_related("case")
        .order_by("-resolved_at")[:20]
    )
    breached = Escalation.objects.filter(
        breached_at__isnull=False, status__in=["open", "acknowledged"]
    ).count()
    return {
        "escalations": _board_queryset(),
        "recent": recent,
        "now": timezone.now(),
        "breached": breached,
    }


@require_GET
@permission_required("moderation.work_escalations", raise_exception=True)
def board(request: HttpRequest) -> HttpResponse:
    return render(
        request, "moderation/escalations.html", {"nav": "escalations", **_board_context()}
    )


@never_cache
@require_GET
@permission_required("moderation.work_escalations", raise_exception=True)
def board_live(request: HttpRequest) -> HttpResponse:
    """The board's live part as an HTML fragment; static/js/live.js polls it (every 10 s)."""
    return render(request, "moderation/_escalations_board.html", _board_context())


@require_GET
@permission_required("moderation.work_escalations", raise_exception=True)
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    escalation = get_object_or_404(
        Escalation.objects.select_related("case", "acknowledged_by", "called_by", "rule"), pk=pk
    )
    packets = getattr(escalation.case, "referral_packets", None)
    return render(
        request,
        "moderation/escalation.html",
        {
            "nav": "escalations",
            "escalation": escalation,
            "forces": uk_police_forces(),
            "timings": escalation_timings(escalation),
            "now": timezone.now(),
            "mine": escalation.acknowledged_by_id == request.user.pk,
            "packets": packets.all() if packets is not None else [],
            "notifications": escalation.notifications.all()[:20],
        },
    )


@require_POST
@permission_required("moderation.work_escalations", raise_exception=True)
@refusal_redirects_to("moderation:escalation", "pk")
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    escalation = get_object_or_404(Escalation, pk=pk)
    escalation_acknowledge(escalation=escalation, lead=request.user)
    return redirect("moderation:escalation", pk=pk)


@require_POST
@permission_required("moderation.work_escalations", raise_exception=True)
@refusal_redirects_to("moderation:escalation", "pk")
def record_call(request: HttpRequest, pk: int) -> HttpResponse:
    escalation = get_object_or_404(Escalation, pk=pk)
    raw = request.POST.get("called_at", "")
    called_at: datetime | None = parse_datetime(raw) if raw else timezone.now()
    if called_at is None:
        messages.error(request, "The call time is not a valid date and time.")
        return redirect("moderation:escalation", pk=pk)
    if timezone.is_naive(called_at):
        called_at = timezone.make_aware(called_at, UTC)  # the form asks for UTC
    escalation_record_call(
        escalation=escalation,
        lead=request.user,
        called_at=called_at,
        police_force=request.POST.get("police_force", ""),
        incident_reference=request.POST.get("incident_reference", ""),
        notes=request.POST.get("notes", ""),
    )
    messages.success(request, "The 999 call is recorded; the follow-up referral is drafted.")
    return redirect("moderation:escalation", pk=pk)


@require_POST
@permission_required("moderation.work_escalations", raise_exception=True)
@refusal_redirects_to("moderation:escalation", "pk")
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    escalation = get_object_or_404(Escalation, pk=pk)
    escalation_resolve(
        escalation=escalation, lead=request.user, notes=request.POST.get("notes", "")
    )
    return redirect("moderation:escalation", pk=pk)
