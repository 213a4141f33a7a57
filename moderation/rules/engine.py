"""The rule engine: what a case looks like to a rule (its context, gathered in a few queries)
and whether a rule's conditions hold. Pure reads: no ORM writes."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from django.utils import timezone

from moderation.models import Case, Decision, EscalationRule, Flag, Item, Match

# Which fields need which reads: a rule set that asks only about matches never loads the case's
# items, and an empty rule set loads nothing (rules_apply returns before building a context).
_ITEM_FIELDS = frozenset(
    {
        "item.kind",
        "text",
        "subject.account_age_days",
        "subject.prior_decisions",
        "visibility",
        "uk_linked",
    }
)
_FLAG_FIELDS = frozenset({"flag.source", "category", "text"})
_MATCH_FIELDS = frozenset({"hash_list", "provider_category", "match.distance"})
CONTEXT_FIELDS = _ITEM_FIELDS | _FLAG_FIELDS | _MATCH_FIELDS | {"priority"}


def rule_fields(rules: Iterable[EscalationRule]) -> frozenset[str]:
    """The context fields a set of rules reads."""
    return frozenset(c["field"] for rule in rules for c in rule.conditions)


def case_context(
    case: Case, *, now: datetime | None = None, fields: Collection[str] | None = None
) -> dict[str, Any]:
    """What conditions can ask about a case, gathered in a few queries: every field, or only
    `fields` (the ones the enabled rules read; the others are absent)."""
    want = CONTEXT_FIELDS if fields is None else frozenset(fields)
    now = now or timezone.now()
    items = list(Item.objects.filter(case=case)) if want & _ITEM_FIELDS else []
    flags = (
        list(Flag.objects.filter(item__case=case).select_related("category"))
        if want & _FLAG_FIELDS
        else []
    )
    matches = (
        list(Match.objects.filter(media__item__case=case).select_related("hash_list", "known_hash"))
        if want & _MATCH_FIELDS
        else []
    )
    ctx: dict[str, Any] = {"priority": case.priority}
    if "item.kind" in want:
        ctx["item.kind"] = {i.kind for i in items}
    if "flag.source" in want:
        ctx["flag.source"] = {f.source for f in flags}
    if "category" in want:
        categories = {f.category.code for f in flags if f.category}
        if case.category_id:
            categories.add(case.category.code)
        ctx["category"] = categories
    if "hash_list" in want:
        ctx["hash_list"] = {m.hash_list.name for m in matches}
    if "provider_category" in want:
        ctx["provider_category"] = {m.known_hash.category for m in matches if m.known_hash.category}
    if "match.distance" in want:
        distances = [m.distance for m in matches if m.distance is not None]
        ctx["match.distance"] = min(distances) if distances else None
    if "text" in want:
        ctx["text"] = " ".join(
            [*(i.text for i in items), *(i.note for i in items), *(f.note for f in flags)]
        ).lower()
    if "subject.account_age_days" in want:
        ages = [
            (now - i.subject_account_created_at).days for i in items if i.subject_account_created_at
        ]
        ctx["subject.account_age_days"] = min(ages) if ages else None
    if "subject.prior_decisions" in want:
        accounts = {(i.source, i.subject_account_id) for i in items if i.subject_account_id}
        ctx["subject.prior_decisions"] = sum(
            Decision.objects.filter(
                case__items__source=source,
                case__items__subject_account_id=account,
                outcome__in=["remove", "remove_and_report"],
            )
            .exclude(case=case)
            .count()
            for source, account in accounts
        )
    if "visibility" in want:
        ctx["visibility"] = {i.visibility for i in items}
    if "uk_linked" in want:
        ctx["uk_linked"] = any(i.uk_linked for i in items)
    return ctx


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
