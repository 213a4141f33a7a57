"""Exposure pages for leads: today's aggregates (never per person) and lifting a limit."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.pages import refusal_redirects_to
from moderation.forms import ExposureLiftForm
from moderation.services.exposure import exposure_aggregate, exposure_lift


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
@refusal_redirects_to("moderation:exposure")
def exposure_lift_view(request: HttpRequest) -> HttpResponse:
    form = ExposureLiftForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a person, a number of reveals and a reason.")
        return redirect("moderation:exposure")
    exposure_lift(
        user=form.cleaned_data["user"],
        lead=request.user,
        extra_reveals=form.cleaned_data["extra_reveals"],
        reason=form.cleaned_data["reason"],
    )
    messages.success(request, "Limit lifted for today.")
    return redirect("moderation:exposure")
