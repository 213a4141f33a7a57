"""Destination pages: leads see where referrals can go; admins add and edit destinations
(contact routes, mode), every change audited by `reports.destinations`.

Imports models and the destination services; refusals are shown on the form, naming the field.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from moderation.forces import uk_police_forces

from ..destinations import EDITABLE, DestinationError, destination_create, destination_update
from ..models import Destination

_TEXT_FIELDS = tuple(f for f in EDITABLE if f not in ("kind", "mode", "enabled"))


@require_GET
@permission_required("reports.view_destination", raise_exception=True)
def destination_index(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    destinations = Destination.objects.order_by("kind", "name")
    if query:
        destinations = destinations.filter(Q(name__icontains=query) | Q(code__icontains=query))
    return render(
        request,
        "reports/destinations.html",
        {
            "nav": "referrals",
            "destinations": destinations,
            "q": query,
            "can_edit": request.user.has_perm("reports.change_destination"),
            "can_add": request.user.has_perm("reports.add_destination"),
        },
    )


def _form_values(request: HttpRequest, destination: Destination | None) -> dict[str, Any]:
    values: dict[str, Any] = {field: request.POST.get(field, "").strip() for field in _TEXT_FIELDS}
    values["mode"] = request.POST.get("mode", Destination.Mode.DRY_RUN)
    values["enabled"] = request.POST.get("enabled") == "on"
    if destination is None:
        values["kind"] = request.POST.get("kind", "")
    if not values["jurisdiction"]:
        values.pop("jurisdiction")
    return values


@require_http_methods(["GET", "POST"])
@permission_required("reports.view_destination", raise_exception=True)
def destination_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    destination = get_object_or_404(Destination, pk=pk) if pk else None
    perm = "reports.change_destination" if destination else "reports.add_destination"
    if not request.user.has_perm(perm):
        raise PermissionDenied("Only admins edit destinations.")
    error: DestinationError | None = None
    if request.method == "POST":
        values = _form_values(request, destination)
        try:
            if destination is None:
                destination = destination_create(actor=request.user, **values)
            else:
                destination = destination_update(
                    actor=request.user, destination=destination, **values
                )
        except DestinationError as exc:
            error = exc
        else:
            messages.success(request, f"{destination.name} saved.")
            return redirect("reports:destinations")
    return render(
        request,
        "reports/destination_edit.html",
        {
            "nav": "referrals",
            "destination": destination,
            "error": error,
            "post": request.POST if request.method == "POST" else None,
            "kinds": Destination.Kind.choices,
            "modes": Destination.Mode.choices,
            "forces": uk_police_forces(),
        },
    )
