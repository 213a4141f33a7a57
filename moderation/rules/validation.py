"""Rule validation: the fields conditions may ask about, the actions, and every problem with a
rule in words an admin can act on (`RuleInvalid`). Reads reference data; writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import DomainError
from moderation.hooks import RULE_ACTIONS
from moderation.models import Escalation, Flag, HashList, Item
from principles.models import HarmCategory


class RuleInvalid(DomainError):
    """Every problem with a rule; the API reports them under the `rule` field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors), fields={"rule": errors})
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
