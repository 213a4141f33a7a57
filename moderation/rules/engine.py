"""The rule engine: what a case looks like to a rule (its context, gathered in a few queries)
and whether a rule's conditions hold. Pure reads: no ORM writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Min
from django.utils import timezone

from moderation.models import Case, Decision, EscalationRule, Flag, Item, Match


def case_context(case: Case, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything conditions can ask about a case, gathered in a few queries."""
    now = now or timezone.now()
    items = list(Item.objects.filter(case=case))
    flags = list(Flag.objects.filter(item__case=case).select_related("category"))
    matches = list(
        Match.objects.filter(media__item__case=case).select_related("hash_list", "known_hash")
    )
    categories = {f.category.code for f in flags if f.category}
    if case.category_id:
        categories.add(case.category.code)
    ages = [
        (now - i.subject_account_created_at).days for i in items if i.subject_account_created_at
    ]
    accounts = {(i.source, i.subject_account_id) for i in items if i.subject_account_id}
    prior = 0
    for source, account in accounts:
        prior += (
            Decision.objects.filter(
                case__items__source=source,
                case__items__subject_account_id=account,
                outcome__in=["remove", "remove_and_report"],
            )
            .exclude(case=case)
            .count()
        )
    distance = Match.objects.filter(media__item__case=case).aggregate(d=Min("distance"))["d"]
    return {
        "item.kind": {i.kind for i in items},
        "flag.source": {f.source for f in flags},
        "category": categories,
        "hash_list": {m.hash_list.name for m in matches},
        "provider_category": {m.known_hash.category for m in matches if m.known_hash.category},
        "match.distance": distance,
        "text": " ".join(
            [*(i.text for i in items), *(i.note for i in items), *(f.note for f in flags)]
        ).lower(),
        "subject.account_age_days": min(ages) if ages else None,
        "subject.prior_decisions": prior,
        "visibility": {i.visibility for i in items},
        "uk_linked": any(i.uk_linked for i in items),
        "priority": case.priority,
    }


def condition_holds(cond: dict[str, Any], ctx: dict[str, Any]) -> bool:
    field, op, value = cond["field"], cond["op"], cond["value"]
    actual = ctx.get(field)
    if op == "contains_any":
        return any(keyword.lower() in actual for keyword in value)
    if isinstance(actual, set):
        return bool(actual & set(value)) if op == "in" else value in actual
    if actual is None:
        return False
    if op == "eq":
        return actual == value
    if op == "lte":
        return actual <= value
    if op == "gte":
        return actual >= value
    raise ValueError(f"unknown op {op!r}")


def rule_matches(rule: EscalationRule, ctx: dict[str, Any]) -> bool:
    return all(condition_holds(c, ctx) for c in rule.conditions)
