"""Reads that need care: queue order, per-user visibility, summaries."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from .models import Case

ACTIVE = (Case.Status.OPEN, Case.Status.IN_REVIEW)


def case_visible_to(user: Any) -> QuerySet[Case]:
    """Cases the user may open: all for leads; unrestricted ones plus granted restricted ones
    for moderators; none for anyone else."""
    if not user.is_authenticated or not user.has_perm("moderation.view_case"):
        return Case.objects.none()
    if user.has_perm("moderation.view_all_cases"):
        return Case.objects.all()
    granted = get_objects_for_user(
        user, "moderation.work_restricted_case", klass=Case, accept_global_perms=False
    ).values("pk")
    return Case.objects.filter(Q(restricted=False) | Q(pk__in=granted) | Q(claimed_by=user))


def queue_counts() -> dict[str, Any]:
    """Open and in-review counts per priority, and SLA breaches, in one query."""
    now = timezone.now()
    rows = (
        Case.objects.filter(status__in=ACTIVE)
        .values("priority")
        .annotate(total=Count("id"), breached=Count("id", filter=Q(sla_due_at__lt=now)))
    )
    by_priority = {p: {"total": 0, "breached": 0} for p in range(5)}
    for row in rows:
        by_priority[row["priority"]] = {"total": row["total"], "breached": row["breached"]}
    return {
        "by_priority": by_priority,
        "total": sum(v["total"] for v in by_priority.values()),
        "breached": sum(v["breached"] for v in by_priority.values()),
    }


QUEUE_PAGE_SIZE = 50


def queue_page(
    *,
    user: Any,
    status: str = "active",
    priority: int | None = None,
    category: str | None = None,
    source: str | None = None,
    mine: bool = False,
    after: tuple[int, str, int] | None = None,
    page_size: int = QUEUE_PAGE_SIZE,
) -> list[Case]:
    """One page of the queue in queue order, by keyset (no OFFSET: page 1,000 costs as page 1).

    The query count is fixed (one for cases with their category and holder joined) whatever
    the page size; per-row extras are computed in bulk by the caller.
    """
    qs = case_visible_to(user).select_related("category", "claimed_by")
    if status == "active":
        qs = qs.filter(status__in=ACTIVE)
    elif status in Case.Status.values:
        qs = qs.filter(status=status)
    if priority is not None:
        qs = qs.filter(priority=priority)
    if category:
        qs = qs.filter(category__code=category)
    if source:
        qs = qs.filter(source=source)
    if mine:
        qs = qs.filter(claimed_by=user)
    if after is not None:
        p, due, pk = after
        qs = qs.filter(
            Q(priority__gt=p)
            | Q(priority=p, sla_due_at__gt=due)
            | Q(priority=p, sla_due_at=due, id__gt=pk)
        )
    return list(qs.order_by("priority", "sla_due_at", "id")[:page_size])


def case_detail(*, user: Any, pk: int) -> Case:
    """A case with everything the review page shows, or DoesNotExist if the user may not see it."""
    from django.db.models import Prefetch

    from .models import Flag, Item, Match

    items = (
        Item.objects.select_related("media", "category_hint")
        .prefetch_related(
            Prefetch("flags", queryset=Flag.objects.select_related("category")),
            Prefetch(
                "media__matches", queryset=Match.objects.select_related("hash_list", "known_hash")
            ),
        )
        .order_by("created_at", "id")
    )
    return (
        case_visible_to(user)
        .select_related("category", "claimed_by")
        .prefetch_related(
            Prefetch("items", queryset=items),
            "decisions__categories",
            "decisions__moderator",
            "category__principles",
        )
        .get(pk=pk)
    )


def match_summaries(case_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per case: number of items and of hash matches — one grouped query for a whole page."""
    from .models import Item

    rows = (
        Item.objects.filter(case_id__in=case_ids)
        .values("case_id")
        .annotate(items=Count("id", distinct=True), matches=Count("media__matches", distinct=True))
    )
    return {r["case_id"]: {"items": r["items"], "matches": r["matches"]} for r in rows}
