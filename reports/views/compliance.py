"""Compliance pages: per-principle metrics and charts, coverage, operations, transparency, QA.

Imports models, selectors, `reports.charts` and the transparency and QA services. A period
that cannot be parsed falls back to the last 30 days with a message; refused QA actions become
a message and a redirect through `core.pages`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from core.pages import refusal_redirects_to
from moderation.models import Decision
from principles.models import HarmCategory, Principle

from ..charts import bar_chart
from ..models import Destination, QaReview, TransparencyReport
from ..qa import QaError, qa_complete, qa_sample
from ..selectors.compliance import (
    Period,
    PeriodError,
    coverage,
    operations,
    parse_period,
    principle_daily_flags,
    principle_metrics,
    qa_agreement,
)
from ..transparency import FORMATS, render_csv, render_json, transparency_report_request

VIEW = "reports.view_transparencyreport"


def _period(request: HttpRequest) -> tuple[Period, str | None]:
    """The requested period, or the last 30 days with the reason the request was refused."""
    try:
        return parse_period(request.GET.get("start"), request.GET.get("end")), None
    except PeriodError as exc:
        return parse_period(None, None), str(exc)


@require_GET
@permission_required(VIEW, raise_exception=True)
def overview(request: HttpRequest) -> HttpResponse:
    period, error = _period(request)
    if error:
        messages.error(request, error)
    rows = coverage()
    return render(
        request,
        "reports/compliance.html",
        {
            "nav": "compliance",
            "coverage": rows,
            "period": period,
            "gaps": [r for r in rows if r.status == "gap"],
        },
    )


@require_GET
@permission_required(VIEW, raise_exception=True)
def principle_page(request: HttpRequest, number: int) -> HttpResponse:
    principle = get_object_or_404(
        Principle.objects.prefetch_related("harm_categories"), number=number
    )
    period, error = _period(request)
    if error:
        messages.error(request, error)
    metrics = principle_metrics(principle, period)
    status = next(c for c in coverage() if c.number == number)
    counts = [
        ("Items flagged", metrics["items_flagged"]),
        ("Actioned", metrics["actioned"]),
        ("Referred", metrics["referred"]),
        ("SLA breaches", metrics["sla_breaches"]),
    ]
    return render(
        request,
        "reports/principle.html",
        {
            "nav": "compliance",
            "principle": principle,
            "period": period,
            "metrics": metrics,
            "coverage": status,
            "chart_counts": bar_chart(counts, title=f"Principle {number}: {period.label()}"),
            "chart_daily": bar_chart(
                principle_daily_flags(principle, period), title="Flags per day"
            ),
        },
    )


@require_GET
@permission_required(VIEW, raise_exception=True)
def operations_page(request: HttpRequest) -> HttpResponse:
    period, error = _period(request)
    if error:
        messages.error(request, error)
    ops = operations(period)
    charts = {}
    if isinstance(ops["queue_depth"], dict):
        charts["queue"] = bar_chart(
            [(f"P{p}", n) for p, n in ops["queue_depth"].items()], title="Queue depth by priority"
        )
    if isinstance(ops["throughput"], list):
        charts["throughput"] = bar_chart(ops["throughput"], title="Decisions per day")
    if isinstance(ops["outcomes"], dict):
        outcome = dict(Decision.Outcome.choices)  # the chart is read by people: labels
        charts["outcomes"] = bar_chart(
            [(outcome.get(code, code), n) for code, n in sorted(ops["outcomes"].items())],
            title="Decisions by outcome",
        )
    if isinstance(ops["referrals"], dict):
        charts["referrals"] = bar_chart(
            sorted(ops["referrals"].items()), title="Referrals by destination"
        )
    return render(
        request,
        "reports/operations.html",
        {
            "nav": "compliance",
            "period": period,
            "ops": ops,
            "charts": charts,
            "qa": qa_agreement(period),
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required(VIEW, raise_exception=True)
def transparency_index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not request.user.has_perm("reports.add_transparencyreport"):
            raise Http404
        try:
            period = parse_period(request.POST.get("start"), request.POST.get("end"))
        except PeriodError as exc:
            messages.error(request, str(exc))
        else:
            report = transparency_report_request(
                period=period, actor=request.user, created_by=request.user
            )
            return redirect("compliance:transparency_report", pk=report.pk)
    return render(
        request,
        "reports/transparency.html",
        {"nav": "compliance", "reports": TransparencyReport.objects.all()[:50]},
    )


@require_GET
@permission_required(VIEW, raise_exception=True)
def transparency_report(request: HttpRequest, pk: int) -> HttpResponse:
    report = get_object_or_404(TransparencyReport, pk=pk)
    fmt = request.GET.get("format", "")
    if request.headers.get("Accept") == "application/json" and not fmt:
        return JsonResponse({"status": report.status, "progress": report.progress})
    if fmt and fmt not in FORMATS:
        messages.error(request, f"Unknown format {fmt!r}; choose json, csv or html.")
        return redirect("compliance:transparency_report", pk=pk)
    if fmt in ("json", "csv") and report.status == "done":
        body = render_json(report.metrics) if fmt == "json" else render_csv(report.metrics)
        response = HttpResponse(
            body, content_type="application/json" if fmt == "json" else "text/csv"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="transparency-{report.start}-{report.end}.{fmt}"'
        )
        return response
    metrics = report.metrics.get("metrics", {})
    return render(
        request,
        "reports/transparency_report.html",
        {
            "nav": "compliance",
            "report": report,
            "m": metrics,
            "labelled": _labelled_breakdowns(metrics),
            "printable": fmt == "html",
        },
    )


def _labelled_breakdowns(metrics: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """The report's breakdowns with readable names. The stored report and its JSON/CSV keep
    the stable codes (`known_csam`); people reading the page get the labels."""
    names = {
        "items_by_category": dict(HarmCategory.objects.values_list("code", "label")),
        "decisions_by_outcome": dict(Decision.Outcome.choices),
        "referrals_by_destination_kind": dict(Destination.Kind.choices),
    }
    return {
        key: [(labels.get(code, code), value) for code, value in metrics.get(key, {}).items()]
        for key, labels in names.items()
    }


@require_http_methods(["GET", "POST"])
@permission_required("reports.add_qareview", raise_exception=True)
@refusal_redirects_to("compliance:qa")
def qa_index(request: HttpRequest) -> HttpResponse:
    reviewers = (
        get_user_model()
        .objects.filter(groups__name__in=["Moderator", "Safety lead"], is_active=True)
        .distinct()
    )
    if request.method == "POST":
        try:
            period = parse_period(request.POST.get("start"), request.POST.get("end"))
            reviewer = reviewers.filter(pk=request.POST.get("reviewer") or 0).first()
            if reviewer is None:
                raise QaError("Choose a reviewer.")
            sampled = qa_sample(
                lead=request.user,
                reviewer=reviewer,
                period=period,
                size=int(request.POST.get("size") or 10),
            )
        except ValueError as exc:
            # A malformed reviewer id or size (the ORM and int() raise ValueError) is reported
            # like a refusal. PeriodError is a ValueError too, so it lands here, with the same
            # message and redirect the decorator would give; QaError goes to the decorator.
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{len(sampled)} decision(s) sampled for blind review.")
        return redirect("compliance:qa")
    period, _ = _period(request)
    return render(
        request,
        "reports/qa.html",
        {
            "nav": "compliance",
            "reviewers": reviewers,
            "agreement": qa_agreement(period),
            "mine": QaReview.objects.filter(
                reviewer=request.user, completed_at__isnull=True
            ).select_related("decision__case"),
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required("moderation.decide_case", raise_exception=True)
@refusal_redirects_to("compliance:qa_review", "pk")
def qa_review(request: HttpRequest, pk: int) -> HttpResponse:
    review = get_object_or_404(
        QaReview.objects.select_related("decision__case"), pk=pk, reviewer=request.user
    )
    if request.method == "POST":
        qa_complete(
            review=review,
            reviewer=request.user,
            outcome=request.POST.get("outcome", ""),
            categories=list(
                HarmCategory.objects.filter(code__in=request.POST.getlist("categories"))
            ),
            notes=request.POST.get("notes", ""),
        )
        messages.success(request, "Second review recorded.")
        return redirect("moderation:home")
    case = review.decision.case
    return render(
        request,
        "reports/qa_review.html",
        {
            "nav": "compliance",
            "review": review,
            "case": case,
            "items": case.items.prefetch_related("flags__category").select_related("media"),
            "outcomes": Decision.Outcome.choices,
            "categories": HarmCategory.objects.all(),
        },
    )
