"""Exchange pages: admins connect hash exchanges and fetch now; leads watch them fill lists.

Seeing an exchange needs `view_knownhash` (leads and admins): whoever may see a list's
entries may see where they came from. Changing one needs the exchange model's own add/change
permissions (admins). Credentials are never rendered back, in any page or response.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.pages import refusal_redirects_to
from moderation.exchanges.configure import (
    exchange_create,
    exchange_fetch_request,
    exchange_update,
)
from moderation.exchanges.forms import ExchangeForm
from moderation.models import Exchange, ExchangeEntry, ExchangeFeedback, ExchangeFetch

VIEW_PERMISSION = "moderation.view_knownhash"


def _progress(exchange: Exchange) -> dict[str, Any]:
    fetch = exchange.current_fetch or exchange.fetches.first()
    stalled = (
        exchange.state == Exchange.State.RUNNING
        and exchange.lease_expires_at is not None
        and exchange.lease_expires_at < timezone.now()
    )
    return {
        "id": exchange.pk,
        "state": exchange.state,
        "state_display": "Stalled (resumes from its checkpoint)"
        if stalled
        else exchange.get_state_display(),
        "enabled": exchange.enabled,
        "progress_at": exchange.progress_at.isoformat() if exchange.progress_at else None,
        "last_success_at": exchange.last_success_at.isoformat()
        if exchange.last_success_at
        else None,
        "next_fetch_at": exchange.next_fetch_at.isoformat() if exchange.next_fetch_at else None,
        "last_error": exchange.last_error,
        "fetch": None
        if fetch is None
        else {
            "id": fetch.pk,
            "status": fetch.status,
            "pages": fetch.pages,
            "records": fetch.records,
            "added": fetch.added,
            "updated": fetch.updated,
            "withdrawn": fetch.withdrawn,
            "skipped": fetch.skipped,
            "retries": fetch.retries,
        },
    }


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def exchange_index(request: HttpRequest) -> HttpResponse:
    exchanges = list(Exchange.objects.select_related("hash_list", "current_fetch"))
    for exchange in exchanges:
        exchange.progress = _progress(exchange)  # type: ignore[attr-defined]
    return render(
        request,
        "moderation/exchanges.html",
        {"nav": "exchanges", "exchanges": exchanges, "form": ExchangeForm()},
    )


@require_POST
@permission_required("moderation.add_exchange", raise_exception=True)
@refusal_redirects_to("moderation:exchanges")
def exchange_create_view(request: HttpRequest) -> HttpResponse:
    form = ExchangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The exchange was not saved: " + form.errors_text())
        return redirect("moderation:exchanges")
    exchange = exchange_create(
        kind=form.cleaned_data["kind"],
        settings=form.exchange_settings(),
        credentials=form.credentials(),
        actor=request.user,
    )
    messages.success(request, f"Created {exchange.name}.")
    return redirect("moderation:exchange", pk=exchange.pk)


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def exchange_detail(request: HttpRequest, pk: int) -> HttpResponse:
    exchange = get_object_or_404(
        Exchange.objects.select_related("hash_list", "current_fetch"), pk=pk
    )
    entries = (
        ExchangeEntry.objects.filter(exchange=exchange)
        .select_related("known_hash__hash_list")
        .order_by("-last_updated_at", "-pk")[:50]
    )
    return render(
        request,
        "moderation/exchange.html",
        {
            "nav": "exchanges",
            "exchange": exchange,
            "progress": _progress(exchange),
            "fetches": ExchangeFetch.objects.filter(exchange=exchange)[:10],
            "entries": entries,
            "live_entries": ExchangeEntry.objects.filter(
                exchange=exchange, deleted_at__isnull=True
            ).count(),
            "feedback": ExchangeFeedback.objects.filter(exchange=exchange)[:20],
            "form": ExchangeForm(exchange=exchange)
            if request.user.has_perm("moderation.change_exchange")
            else None,
        },
    )


@require_POST
@permission_required("moderation.change_exchange", raise_exception=True)
@refusal_redirects_to("moderation:exchange", "pk")
def exchange_update_view(request: HttpRequest, pk: int) -> HttpResponse:
    exchange = get_object_or_404(Exchange, pk=pk)
    form = ExchangeForm(request.POST, exchange=exchange)
    if not form.is_valid():
        messages.error(request, "The exchange was not saved: " + form.errors_text())
        return redirect("moderation:exchange", pk=pk)
    exchange_update(
        exchange=exchange,
        settings=form.exchange_settings(),
        credentials=form.credentials(),
        actor=request.user,
    )
    messages.success(request, f"Saved {exchange.name}.")
    return redirect("moderation:exchange", pk=pk)


@require_POST
@permission_required("moderation.change_exchange", raise_exception=True)
@refusal_redirects_to("moderation:exchange", "pk")
def exchange_fetch_now(request: HttpRequest, pk: int) -> HttpResponse:
    exchange = get_object_or_404(Exchange, pk=pk)
    exchange_fetch_request(exchange=exchange, actor=request.user)
    messages.success(request, f"Fetching {exchange.name}: progress shows below.")
    return redirect("moderation:exchange", pk=pk)


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def exchange_progress(request: HttpRequest, pk: int) -> JsonResponse:
    exchange = get_object_or_404(Exchange.objects.select_related("current_fetch"), pk=pk)
    return JsonResponse(_progress(exchange))
