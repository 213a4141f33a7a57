"""Leads' escalations board and the 999 checklist; the "child at immediate risk" action;
admins' escalation rules pages."""

from __future__ import annotations

import json
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
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .case_views import _get_case_for_user
from .escalations import (
    EscalationError,
    case_mark_immediate_risk,
    escalation_acknowledge,
    escalation_record_call,
    escalation_resolve,
    escalation_timings,
    uk_police_forces,
)
from .models import Escalation, EscalationRule
from .rules import RuleInvalid, rule_preview, rule_save


@require_POST
@permission_required("moderation.mark_immediate_risk", raise_exception=True)
def mark_immediate_risk(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
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


@require_GET
@permission_required("moderation.work_escalations", raise_exception=True)
def board(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    recent = (
        Escalation.objects.filter(status="resolved")
        .select_related("case")
        .order_by("-resolved_at")[:20]
    )
    breached = Escalation.objects.filter(
        breached_at__isnull=False, status__in=["open", "acknowledged"]
    ).count()
    return render(
        request,
        "moderation/escalations.html",
        {
            "nav": "escalations",
            "escalations": _board_queryset(),
            "recent": recent,
            "now": now,
            "breached": breached,
        },
    )


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
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    escalation = get_object_or_404(Escalation, pk=pk)
    try:
        escalation_acknowledge(escalation=escalation, lead=request.user)
    except EscalationError as exc:
        messages.error(request, str(exc))
    return redirect("moderation:escalation", pk=pk)


@require_POST
@permission_required("moderation.work_escalations", raise_exception=True)
def record_call(request: HttpRequest, pk: int) -> HttpResponse:
    escalation = get_object_or_404(Escalation, pk=pk)
    raw = request.POST.get("called_at", "")
    called_at: datetime | None = parse_datetime(raw) if raw else timezone.now()
    if called_at is None:
        messages.error(request, "The call time is not a valid date and time.")
        return redirect("moderation:escalation", pk=pk)
    if timezone.is_naive(called_at):
        called_at = timezone.make_aware(called_at, UTC)  # the form asks for UTC
    try:
        escalation_record_call(
            escalation=escalation,
            lead=request.user,
            called_at=called_at,
            police_force=request.POST.get("police_force", ""),
            incident_reference=request.POST.get("incident_reference", ""),
            notes=request.POST.get("notes", ""),
        )
    except EscalationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The 999 call is recorded; the follow-up referral is drafted.")
    return redirect("moderation:escalation", pk=pk)


@require_POST
@permission_required("moderation.work_escalations", raise_exception=True)
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    escalation = get_object_or_404(Escalation, pk=pk)
    try:
        escalation_resolve(
            escalation=escalation, lead=request.user, notes=request.POST.get("notes", "")
        )
    except EscalationError as exc:
        messages.error(request, str(exc))
    return redirect("moderation:escalation", pk=pk)


# --- Rules (admins) -------------------------------------------------------------------------


@require_GET
@permission_required("moderation.view_escalationrule", raise_exception=True)
def rule_index(request: HttpRequest) -> HttpResponse:
    return render(
        request, "moderation/rules.html", {"nav": "rules", "rules": EscalationRule.objects.all()}
    )


def _parse_json(raw: str, what: str) -> Any:
    try:
        return json.loads(raw or "[]")
    except json.JSONDecodeError as exc:
        raise RuleInvalid([f"{what} is not valid JSON: {exc.msg} (line {exc.lineno})"]) from None


@require_http_methods(["GET", "POST"])
@permission_required("moderation.change_escalationrule", raise_exception=True)
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(EscalationRule, pk=pk) if pk else None
    data = request.POST if request.method == "POST" else None
    errors: list[str] = []
    preview = None
    form = {
        "name": data.get("name", "") if data else (rule.name if rule else ""),
        "order": data.get("order", "100") if data else str(rule.order if rule else 100),
        "enabled": (data.get("enabled") == "on") if data else (rule.enabled if rule else True),
        "description": data.get("description", "") if data else (rule.description if rule else ""),
        "conditions": data.get("conditions", "")
        if data
        else json.dumps(
            rule.conditions if rule else [{"field": "category", "op": "eq", "value": "grooming"}],
            indent=2,
        ),
        "actions": data.get("actions", "")
        if data
        else json.dumps(
            rule.actions if rule else [{"type": "open_escalation", "tier": "lead"}], indent=2
        ),
    }
    if data is not None:
        try:
            conditions = _parse_json(form["conditions"], "Conditions")
            actions = _parse_json(form["actions"], "Actions")
            if not form["name"].strip():
                raise RuleInvalid(["Give the rule a name."])
            try:
                order = int(form["order"])
            except ValueError:
                raise RuleInvalid(["Order must be a whole number."]) from None
            if data.get("preview"):
                preview = rule_preview(conditions=conditions, actions=actions)
            else:
                saved = rule_save(
                    actor=request.user,
                    name=form["name"].strip(),
                    conditions=conditions,
                    actions=actions,
                    order=order,
                    enabled=form["enabled"],
                    description=form["description"],
                    rule=rule,
                )
                messages.success(request, f"Rule {saved.name!r} saved (version {saved.version}).")
                return redirect("moderation:rules")
        except RuleInvalid as exc:
            errors = exc.errors
    return render(
        request,
        "moderation/rule_form.html",
        {"nav": "rules", "rule": rule, "form": form, "errors": errors, "preview": preview},
        status=400 if errors else 200,
    )
