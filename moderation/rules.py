"""Escalation rules: admins write policy as data; the system validates and enforces it.

A rule has conditions (all must hold) and actions. Conditions are `{"field", "op", "value"}`
over a case's items, flags, matches and subject; actions are `{"type", ...params}`.
Rules run after intake, after hashing and matching, and after each decision, in order. Each
rule applies at most once per case and rule version, so re-running is safe. A rule that fails
at run time is disabled and reported; it never blocks intake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from principles.models import HarmCategory

from .hooks import RULE_ACTIONS
from .models import (
    Case,
    Decision,
    Escalation,
    EscalationRule,
    Flag,
    HashList,
    Item,
    Match,
)

logger = logging.getLogger(__name__)


class RuleInvalid(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # "set" (any item/flag/match has it), "int", "bool", "text"
    ops: tuple[str, ...]
    choices: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None


def _field_specs() -> dict[str, FieldSpec]:
    categories = tuple(HarmCategory.objects.values_list("code", flat=True))
    lists = tuple(HashList.objects.values_list("name", flat=True))
    return {
        "item.kind": FieldSpec("set", ("eq", "in"), tuple(Item.Kind.values)),
        "flag.source": FieldSpec("set", ("eq", "in"), tuple(Flag.Source.values)),
        "category": FieldSpec("set", ("eq", "in"), categories),
        "hash_list": FieldSpec("set", ("eq", "in"), lists),
        "provider_category": FieldSpec("set", ("eq", "in")),
        "match.distance": FieldSpec("int", ("lte", "gte", "eq"), minimum=0, maximum=256),
        "text": FieldSpec("text", ("contains_any",)),
        "subject.account_age_days": FieldSpec("int", ("lte", "gte"), minimum=0, maximum=36500),
        "subject.prior_decisions": FieldSpec(
            "int", ("gte", "lte", "eq"), minimum=0, maximum=100000
        ),
        "visibility": FieldSpec("set", ("eq", "in"), tuple(Item.Visibility.values)),
        "uk_linked": FieldSpec("bool", ("eq",)),
        "priority": FieldSpec("int", ("lte", "gte", "eq"), minimum=0, maximum=4),
    }


ACTION_TYPES = ("set_priority", "mark_immediate_risk", "open_escalation", "restrict_case", "notify")


# --- Validation ------------------------------------------------------------------------------


def _validate_condition(i: int, cond: Any, specs: dict[str, FieldSpec]) -> list[str]:
    where = f"condition {i + 1}"
    if not isinstance(cond, dict) or set(cond) != {"field", "op", "value"}:
        return [f"{where}: must be an object with exactly field, op and value"]
    field, op, value = cond["field"], cond["op"], cond["value"]
    spec = specs.get(field)
    if spec is None:
        return [f"{where}: unknown field {field!r} (known: {', '.join(sorted(specs))})"]
    if op not in spec.ops:
        return [f"{where}: {field} takes op {' or '.join(spec.ops)}, not {op!r}"]
    if spec.kind == "set":
        values = value if op == "in" else [value]
        if op == "in" and (not isinstance(value, list) or not value):
            return [f"{where}: 'in' needs a non-empty list"]
        if not all(isinstance(v, str) for v in values):
            return [f"{where}: values must be strings"]
        if spec.choices is not None:
            unknown = [v for v in values if v not in spec.choices]
            if unknown:
                return [f"{where}: {field} cannot be {', '.join(map(repr, unknown))}"]
    elif spec.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: {field} needs a whole number"]
        if not spec.minimum <= value <= spec.maximum:  # type: ignore[operator]
            return [
                f"{where}: {field} {op} {value} can never hold "
                f"(range {spec.minimum}-{spec.maximum})"
            ]
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            return [f"{where}: {field} needs true or false"]
    elif spec.kind == "text" and (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        return [f"{where}: contains_any needs a non-empty list of keywords"]
    return []


def _impossible(conditions: list[dict[str, Any]]) -> list[str]:
    """Conditions that contradict each other, e.g. priority ≤ 1 and priority ≥ 3."""
    errors = []
    bounds: dict[str, tuple[int, int]] = {}
    equals: dict[str, set[str]] = {}
    for cond in conditions:
        field, op, value = cond["field"], cond["op"], cond["value"]
        if isinstance(value, int) and not isinstance(value, bool):
            lo, hi = bounds.get(field, (-(10**9), 10**9))
            if op in ("gte", "eq"):
                lo = max(lo, value)
            if op in ("lte", "eq"):
                hi = min(hi, value)
            bounds[field] = (lo, hi)
            if lo > hi:
                errors.append(
                    f"{field}: the conditions contradict each other (no value is "
                    f"both ≥ {lo} and ≤ {hi})"
                )
        elif field == "uk_linked" and isinstance(value, bool):
            seen = equals.setdefault(field, set())
            seen.add(str(value))
            if len(seen) > 1:
                errors.append("uk_linked cannot be both true and false")
    return errors


def _validate_action(i: int, action: Any) -> list[str]:
    where = f"action {i + 1}"
    if not isinstance(action, dict) or "type" not in action:
        return [f"{where}: must be an object with a type"]
    kind = action["type"]
    params = {k: v for k, v in action.items() if k != "type"}
    if kind in RULE_ACTIONS:
        validate, _ = RULE_ACTIONS[kind]
        return [f"{where}: {e}" for e in validate(params)]
    if kind not in ACTION_TYPES:
        known = sorted({*ACTION_TYPES, *RULE_ACTIONS})
        return [f"{where}: unknown action {kind!r} (known: {', '.join(known)})"]
    if kind == "set_priority":
        p = params.get("priority")
        if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 4:
            return [f"{where}: set_priority needs priority 0-4"]
    elif kind == "open_escalation":
        if params.get("tier") not in Escalation.Tier.values:
            return [f"{where}: open_escalation needs tier {' or '.join(Escalation.Tier.values)}"]
    elif kind == "notify":
        channel, to = params.get("channel"), params.get("to")
        if channel not in ("email", "webhook") or not isinstance(to, str) or not to:
            return [f"{where}: notify needs channel email or webhook, and to"]
        if channel == "webhook" and not to.startswith(("https://", "http://")):
            return [f"{where}: a webhook target must be an http(s) URL"]
        if channel == "email" and "@" not in to:
            return [f"{where}: {to!r} is not an email address"]
    return []


def rule_validate(*, conditions: Any, actions: Any) -> None:
    """Raise RuleInvalid listing every problem, in words an admin can act on."""
    errors: list[str] = []
    if not isinstance(conditions, list) or not conditions:
        errors.append("A rule needs at least one condition.")
        conditions = []
    if not isinstance(actions, list) or not actions:
        errors.append("A rule needs at least one action.")
        actions = []
    specs = _field_specs()
    for i, cond in enumerate(conditions):
        errors.extend(_validate_condition(i, cond, specs))
    if not errors:
        errors.extend(_impossible(conditions))
    for i, action in enumerate(actions):
        errors.extend(_validate_action(i, action))
    if errors:
        raise RuleInvalid(errors)


def rule_save(
    *,
    actor: Actor,
    name: str,
    conditions: Any,
    actions: Any,
    order: int = 100,
    enabled: bool = True,
    description: str = "",
    rule: EscalationRule | None = None,
) -> EscalationRule:
    """Create or update a rule (validated; version bumped; audited with before/after)."""
    rule_validate(conditions=conditions, actions=actions)
    with transaction.atomic():
        if rule is None:
            rule = EscalationRule.objects.create(
                name=name,
                conditions=conditions,
                actions=actions,
                order=order,
                enabled=enabled,
                description=description,
                created_by=actor if getattr(actor, "pk", None) else None,
            )
            audit_record(
                actor=actor,
                verb="rule.created",
                obj=rule,
                data={
                    "name": name,
                    "conditions": conditions,
                    "actions": actions,
                    "order": order,
                    "enabled": enabled,
                },
            )
            return rule
        locked = EscalationRule.objects.select_for_update().get(pk=rule.pk)
        before = {
            "name": locked.name,
            "conditions": locked.conditions,
            "actions": locked.actions,
            "order": locked.order,
            "enabled": locked.enabled,
        }
        locked.name, locked.conditions, locked.actions = name, conditions, actions
        locked.order, locked.enabled, locked.description = order, enabled, description
        locked.version += 1
        locked.last_error = ""
        locked.save()
        audit_record(
            actor=actor,
            verb="rule.updated",
            obj=locked,
            data={
                "before": before,
                "after": {
                    "name": name,
                    "conditions": conditions,
                    "actions": actions,
                    "order": order,
                    "enabled": enabled,
                },
                "version": locked.version,
            },
        )
        return locked


# --- Evaluation ------------------------------------------------------------------------------


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


def _apply_action(case: Case, action: dict[str, Any], rule: EscalationRule) -> str:
    from .escalations import case_mark_immediate_risk, escalation_open
    from .services import case_apply_severity

    kind = action["type"]
    params = {k: v for k, v in action.items() if k != "type"}
    reason = f"rule {rule.name!r}"
    if kind in RULE_ACTIONS:
        _, apply = RULE_ACTIONS[kind]
        return apply(case=case, params=params, actor=WORKER, rule=rule)
    if kind == "set_priority":
        locked = Case.objects.select_for_update().get(pk=case.pk)
        changed = case_apply_severity(
            case=locked, category=None, priority=params["priority"], reason=reason
        )
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
        return f"priority P{locked.priority}"
    if kind == "mark_immediate_risk":
        case_mark_immediate_risk(case=case, actor=WORKER, reason=reason, rule=rule)
        return "marked immediate risk"
    if kind == "open_escalation":
        escalation, created = escalation_open(
            case=case, tier=params["tier"], reason=reason, actor=WORKER, rule=rule
        )
        return f"escalation {escalation.pk} ({'opened' if created else 'already open'})"
    if kind == "restrict_case":
        Case.objects.filter(pk=case.pk).update(restricted=True)
        return "restricted"
    if kind == "notify":
        from .tasks import send_rule_notification

        case_id, channel, to = case.pk, params["channel"], params["to"]
        transaction.on_commit(lambda: send_rule_notification.delay(case_id, rule.pk, channel, to))
        return f"notify {channel} {to}"
    raise ValueError(f"unknown action {kind!r}")


def _already_applied(rule: EscalationRule, case: Case) -> bool:
    from core.models import AuditEvent

    return AuditEvent.objects.filter(
        verb="rule.applied",
        object_type="moderation.case",
        object_id=str(case.pk),
        data__rule=rule.pk,
        data__version=rule.version,
    ).exists()


def rules_apply(*, case_id: int, event: str) -> list[str]:
    """Evaluate every enabled rule against the case, in order; apply the matching ones.

    1. Skip rules already applied to this case at their current version (idempotent).
    2. Each rule runs in its own savepoint: a failure rolls back only that rule, which is then
       disabled with its error recorded and audited.
    3. Effects are recorded on the case (priority_reasons: "why is this P0?") and audited.
    """
    case = Case.objects.select_related("category").filter(pk=case_id).first()
    if case is None:
        return []
    applied: list[str] = []
    ctx = case_context(case)
    for rule in EscalationRule.objects.filter(enabled=True).order_by("order", "id"):
        try:
            with transaction.atomic():
                if _already_applied(rule, case) or not rule_matches(rule, ctx):
                    continue
                # Lock order: the case row before any action writes an audit event (which
                # takes the audit-chain lock until commit), as every other writer does.
                Case.objects.select_for_update().filter(pk=case.pk).first()
                effects = [_apply_action(case, action, rule) for action in rule.actions]
                locked = Case.objects.select_for_update().get(pk=case.pk)
                locked.priority_reasons = [
                    *locked.priority_reasons,
                    {
                        "at": timezone.now().isoformat(),
                        "priority": locked.priority,
                        "reason": f"rule {rule.name!r} ({event}): {'; '.join(effects)}",
                    },
                ][-20:]
                locked.save(update_fields=["priority_reasons", "updated_at"])
                audit_record(
                    actor=WORKER,
                    verb="rule.applied",
                    obj=locked,
                    data={
                        "rule": rule.pk,
                        "name": rule.name,
                        "version": rule.version,
                        "event": event,
                        "effects": effects,
                    },
                )
                applied.append(rule.name)
                case = locked
                ctx = case_context(case)
        except Exception as exc:
            logger.exception("Rule %s failed on case %s; disabling it", rule.pk, case_id)
            with transaction.atomic():
                EscalationRule.objects.filter(pk=rule.pk).update(
                    enabled=False, last_error=f"{type(exc).__name__}: {exc}"[:2000]
                )
                audit_record(
                    actor=WORKER,
                    verb="rule.disabled",
                    obj=rule,
                    data={"case": case_id, "error": f"{type(exc).__name__}: {exc}"[:500]},
                )
    return applied


def rule_preview(*, conditions: Any, actions: Any, limit: int = 200) -> list[Case]:
    """Which of the most recent cases a (validated) rule would have matched."""
    rule_validate(conditions=conditions, actions=actions)
    probe = EscalationRule(name="preview", conditions=conditions, actions=actions)
    recent = Case.objects.select_related("category").order_by("-created_at")[:limit]
    return [case for case in recent if rule_matches(probe, case_context(case))]


def enqueue_rules(case_id: int | None, event: str) -> None:
    """Run the rules after the current transaction commits (never inside intake's)."""
    if case_id is None:
        return

    def _run() -> None:
        from .tasks import apply_rules

        try:
            apply_rules.delay(case_id, event)
        except Exception:  # noqa: BLE001 — broker down: intake must still succeed
            logger.warning("Could not enqueue rules for case %s (%s)", case_id, event)

    transaction.on_commit(_run)
