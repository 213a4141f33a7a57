"""Reads that need care: per-user case visibility, queue order and counts, case detail,
match summaries, known material.

May import: `moderation.models`, `core`, Django and guardian. Nothing that writes.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection
from django.db.models import BigIntegerField, Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone
from guardian.models import GroupObjectPermission, UserObjectPermission

from .models import Case, Flag, Item, KnownHash, Match, QueueEntry


def _granted_case_ids(user: Any) -> tuple[QuerySet[Any], QuerySet[Any]]:
    """Ids of restricted cases granted to the user (directly or through a group).

    Read from guardian's permission tables directly: get_objects_for_user() as a subquery
    made PostgreSQL scan the whole case table on every page (found by the 1 M-case bench).
    """

    content_type = ContentType.objects.get_for_model(Case)
    perm = Permission.objects.filter(
        content_type=content_type, codename="work_restricted_case"
    ).first()
    direct = (
        UserObjectPermission.objects.filter(user=user, permission=perm, content_type=content_type)
        .annotate(case_id=Cast("object_pk", BigIntegerField()))
        .values("case_id")
    )
    via_group = (
        GroupObjectPermission.objects.filter(
            group__user=user, permission=perm, content_type=content_type
        )
        .annotate(case_id=Cast("object_pk", BigIntegerField()))
        .values("case_id")
    )
    return direct, via_group


def case_visible_to(user: Any) -> QuerySet[Case]:
    """Cases the user may open: all for leads; unrestricted ones plus granted restricted ones
    for moderators; none for anyone else."""
    if not user.is_authenticated or not user.has_perm("moderation.view_case"):
        return Case.objects.none()
    if user.has_perm("moderation.view_all_cases"):
        return Case.objects.all()
    direct, via_group = _granted_case_ids(user)
    return Case.objects.filter(
        Q(restricted=False) | Q(pk__in=direct) | Q(pk__in=via_group) | Q(claimed_by=user)
    )


def cases_held_by(user: Any) -> QuerySet[Case]:
    """Cases the user holds (in review, lease live or not). claimed_by is not indexed (claims
    must stay HOT updates): on PostgreSQL the holder index of the claim queue finds them."""
    qs = Case.objects.filter(claimed_by=user, status=Case.Status.IN_REVIEW)
    if connection.vendor == "postgresql":
        qs = qs.filter(pk__in=QueueEntry.objects.filter(holder=user).values("case_id"))
    return qs


def queue_counts(*, fresh: bool = False) -> dict[str, Any]:
    """Open and in-review counts per priority, and SLA breaches, in one query, cached for five
    seconds: at a million open cases the count costs 200-300 ms, and every queue view, the
    home page and the live counters ask for it."""

    if not fresh:
        return cache.get_or_set("moderation:queue_counts", lambda: queue_counts(fresh=True), 5)
    now = timezone.now()
    rows = (
        Case.objects.filter(active=True)
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
    after: tuple[int, Any, int] | None = None,
    page_size: int = QUEUE_PAGE_SIZE,
) -> list[Case]:
    """One page of the queue in queue order, by keyset (no OFFSET: page 1,000 costs as page 1).

    The query count is fixed (one for cases with their category and holder joined) whatever
    the page size; per-row extras are computed in bulk by the caller.
    """
    qs = (
        case_visible_to(user)
        .select_related("category", "claimed_by")
        .prefetch_related("category__principles")
    )
    if status == "active":
        qs = qs.filter(active=True)
    elif status in (Case.Status.OPEN, Case.Status.IN_REVIEW):
        # `active` as well, so the partial queue index serves the order at a million cases.
        qs = qs.filter(active=True, status=status)
    elif status in Case.Status.values:
        qs = qs.filter(status=status)
    if priority is not None:
        qs = qs.filter(priority=priority)
    if category:
        qs = qs.filter(category__code=category)
    if source:
        qs = qs.filter(source=source)
    if mine:
        qs = qs.filter(pk__in=cases_held_by(user).values("pk"))
    if after is not None:
        # A row-value comparison walks the index from the cursor; the equivalent OR of three
        # conditions made PostgreSQL scan from the start (474 ms at case 500,000 vs 0.1 ms).
        qs = qs.extra(
            where=[
                '("moderation_case"."priority", "moderation_case"."sla_due_at", '
                '"moderation_case"."id") > (%s, %s, %s)'
            ],
            params=list(after),
        )
    return list(qs.order_by("priority", "sla_due_at", "id")[:page_size])


def case_detail(*, user: Any, pk: int) -> Case:
    """A case with everything the review page shows, or DoesNotExist if the user may not see it."""

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

    rows = (
        Item.objects.filter(case_id__in=case_ids)
        .values("case_id")
        .annotate(items=Count("id", distinct=True), matches=Count("media__matches", distinct=True))
    )
    return {r["case_id"]: {"items": r["items"], "matches": r["matches"]} for r in rows}


def _justifying_matches() -> QuerySet[Match]:
    return Match.objects.filter(
        hash_list__verified=True,
        known_hash__withdrawn_at__isnull=True,
        known_hash__quarantined_at__isnull=True,
    ).exclude(verdict=Match.Verdict.FALSE_POSITIVE)


def _items_with_a_verified_match() -> QuerySet[Any]:
    """Items whose media match a verified list through an entry its source still lists and
    that is not quarantined, by a match no reviewer called false (such matches stay in history
    but justify nothing automatic)."""
    return _justifying_matches().values("media__item_id")


def known_material_evidence(case_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per case: the matches that make it known material (list, algorithm, distance, the
    provider's category, transform), best first; one query for the whole page, so a moderator
    sees why each case qualifies before acting on it in bulk. The same evidence on several
    items of a case (one image posted twice) is one line with its item count (``items``)."""
    rows = (
        _justifying_matches()
        .filter(media__item__case_id__in=case_ids)
        .order_by("media__item__case_id", "distance", "hash_list__name", "media__item_id")
        .values(
            "media__item__case_id",
            "media__item_id",
            "hash_list__name",
            "algorithm",
            "distance",
            "known_hash__category",
            "transform",
        )
    )
    lines: dict[int, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for row in rows:
        case_id, item_id = row.pop("media__item__case_id"), row.pop("media__item_id")
        line = lines.setdefault(case_id, {}).setdefault(
            tuple(row.values()), {**row, "item_ids": set()}
        )
        line["item_ids"].add(item_id)
    return {
        case_id: [
            {**{k: v for k, v in line.items() if k != "item_ids"}, "items": len(line["item_ids"])}
            for line in by_line.values()
        ]
        for case_id, by_line in lines.items()
    }


def case_is_known_material(case: Case) -> bool:
    """Every item of the case has media matching a verified known-hash list."""
    items = Item.objects.filter(case=case)
    if not items.exists():
        return False
    return not items.exclude(pk__in=_items_with_a_verified_match()).exists()


def known_material_cases() -> Any:
    """Open cases eligible for bulk action from metadata alone (no reveal needed)."""
    unverified = Item.objects.filter(case=OuterRef("pk")).exclude(
        pk__in=_items_with_a_verified_match()
    )
    return (
        Case.objects.filter(active=True, status=Case.Status.OPEN, immediate_risk=False)
        .annotate(n_items=Count("items"))
        .filter(n_items__gt=0)
        .exclude(Exists(unverified))
    )


def list_precision() -> dict[int, tuple[float | None, int]]:
    """Per hash list: the share of reviewers' verdicts that were true matches, and how many
    verdicts there were."""
    rows = (
        Match.objects.exclude(verdict="")
        .values("hash_list_id")
        .annotate(
            total=Count("id"), true=Count("id", filter=Q(verdict=Match.Verdict.TRUE_POSITIVE))
        )
    )
    return {r["hash_list_id"]: (r["true"] / r["total"], r["total"]) for r in rows}


def quarantined_hashes() -> QuerySet[KnownHash]:
    """List hashes in quarantine, with their verdict counts and matches, oldest first."""
    return (
        KnownHash.objects.filter(quarantined_at__isnull=False)
        .select_related("hash_list")
        .annotate(
            n_matches=Count("matches", distinct=True),
            false_positives=Count(
                "matches", filter=Q(matches__verdict=Match.Verdict.FALSE_POSITIVE), distinct=True
            ),
            true_positives=Count(
                "matches", filter=Q(matches__verdict=Match.Verdict.TRUE_POSITIVE), distinct=True
            ),
        )
        .order_by("quarantined_at")
    )
