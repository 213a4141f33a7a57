"""The audit log for safety leads and admins: who did what to which case, reveals, exports.

Read-only and paginated; each page view is itself audited (with its filters), so looking at
the trail leaves a trail. Imports models and core.audit only.
"""

from __future__ import annotations

from datetime import date, datetime, time

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .audit import audit_record
from .models import AuditEvent

PAGE_SIZE = 100
# Shortcuts for what leads look for most: case work, reveals of media, packets leaving.
KINDS = {
    "reveals": Q(verb__startswith="media.revealed") | Q(verb__startswith="media.viewed"),
    "exports": Q(verb__in=["packet.downloaded", "packet.sent", "packet.ncmec_submitted"]),
    "decisions": Q(verb__startswith="decision."),
    "people": Q(object_type__in=["auth.user", "core.apitoken"]),
}


def _day(value: str, *, end: bool = False) -> datetime | None:
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return None
    return timezone.make_aware(datetime.combine(parsed, time.max if end else time.min))


def _case_id(reference: str) -> str | None:
    digits = reference.strip().upper().removeprefix("SG-").lstrip("0")
    return digits if digits.isdigit() else None


def audit_events(params: dict[str, str]) -> tuple[QuerySet[AuditEvent], dict[str, str]]:
    """The events matching the filters, newest first, and the filters as understood."""
    events = AuditEvent.objects.order_by("-id")
    used: dict[str, str] = {}
    kind = params.get("kind", "")
    if kind in KINDS:
        events = events.filter(KINDS[kind])
        used["kind"] = kind
    if verb := params.get("verb", "").strip():
        events = events.filter(verb__startswith=verb)
        used["verb"] = verb
    if actor := params.get("actor", "").strip():
        events = events.filter(actor_label__iexact=actor)
        used["actor"] = actor
    if case := params.get("case", "").strip():
        case_id = _case_id(case)
        if case_id is not None:
            # Events about the case itself, and those that name it in their data.
            events = events.filter(
                Q(object_type="moderation.case", object_id=case_id) | Q(data__case=int(case_id))
            )
            used["case"] = case
    if start := _day(params.get("from", "")):
        events = events.filter(created_at__gte=start)
        used["from"] = params["from"]
    if end := _day(params.get("to", ""), end=True):
        events = events.filter(created_at__lte=end)
        used["to"] = params["to"]
    return events, used


@never_cache
@require_GET
@permission_required("core.view_auditevent", raise_exception=True)
def audit_index(request: HttpRequest) -> HttpResponse:
    events, used = audit_events(request.GET.dict())
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    with transaction.atomic():
        audit_record(
            actor=request.user,
            verb="audit.viewed",
            object_type="core.auditevent",
            object_id="",
            data={"filters": used, "page": page.number},
        )
    return render(
        request,
        "core/audit.html",
        {
            "nav": "audit",
            "page": page,
            "used": used,
            "kinds": sorted(KINDS),
            "query": "&".join(f"{k}={v}" for k, v in used.items()),
        },
    )
