"""What the console's rule builder needs from the server: the fields conditions may ask about
(with their operators and value choices), the actions and their parameters (including those
other apps register through `moderation.hooks`), and which condition or action row each
validation message belongs to. Reads reference data; writes nothing.

The builder edits the same JSON `rule_validate` checks: the field list comes from the
validator's own specs, so the form never offers what the server would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from moderation.hooks import RULE_ACTION_DESCRIPTIONS, RULE_ACTIONS
from moderation.models import Escalation, Flag, HashList, Item
from moderation.rules.validation import _field_specs
from principles.models import HarmCategory, Priority

OPERATORS = {
    "eq": "is",
    "in": "is any of",
    "lte": "is at most",
    "gte": "is at least",
    "contains_any": "contains any of",
}

FIELD_LABELS = {
    "category": "Harm category",
    "hash_list": "Matched hash list",
    "provider_category": "Provider category (e.g. IWF A)",
    "match.distance": "Match distance",
    "flag.source": "Flag source",
    "item.kind": "Item kind",
    "visibility": "Visibility",
    "uk_linked": "UK-linked",
    "text": "Text and notes",
    "subject.account_age_days": "Account age (days)",
    "subject.prior_decisions": "Prior removals of the account",
    "priority": "Case priority",
}

_PRIORITIES: list[list[Any]] = [[value, label] for value, label in Priority.choices]


def _choice_labels() -> dict[str, list[list[Any]]]:
    """Value choices with labels, for the fields whose values come from a fixed set."""
    return {
        "category": [[c, label] for c, label in HarmCategory.objects.values_list("code", "label")],
        "hash_list": [
            [name, f"{name} ({provider})"]
            for name, provider in HashList.objects.values_list("name", "provider")
        ],
        "item.kind": [[v, label] for v, label in Item.Kind.choices],
        "flag.source": [[v, label] for v, label in Flag.Source.choices],
        "visibility": [[v, label] for v, label in Item.Visibility.choices],
        "priority": _PRIORITIES,
        "uk_linked": [[True, "yes"], [False, "no"]],
    }


def _builtin_actions() -> list[dict[str, Any]]:
    return [
        {
            "type": "open_escalation",
            "label": "Open an escalation",
            "params": [
                {
                    "name": "tier",
                    "label": "Tier",
                    "kind": "choice",
                    "choices": [[v, label] for v, label in Escalation.Tier.choices],
                }
            ],
        },
        {
            "type": "set_priority",
            "label": "Raise the priority to",
            "params": [
                {"name": "priority", "label": "Priority", "kind": "int", "choices": _PRIORITIES}
            ],
        },
        {"type": "mark_immediate_risk", "label": "Mark a child at immediate risk", "params": []},
        {"type": "restrict_case", "label": "Restrict the case to leads", "params": []},
        {
            "type": "notify",
            "label": "Notify",
            "params": [
                {
                    "name": "channel",
                    "label": "Channel",
                    "kind": "choice",
                    "choices": [["email", "Email"], ["webhook", "Webhook"]],
                },
                {
                    "name": "to",
                    "label": "To",
                    "kind": "string",
                    "placeholder": "an email address, or an https:// URL for a webhook",
                },
            ],
        },
    ]


def rule_builder_schema() -> dict[str, Any]:
    """The fields, operators and actions the builder offers, as JSON for the page's script.

    Field kinds: "set" (a value from `choices`, or free text when there are none; "in" takes
    several), "int" (a whole number between `min` and `max`, or one of `choices`), "bool",
    "text" (keywords). Action parameters: "choice", "int" (from `choices`) or "string".
    Actions other apps register describe their parameters through `moderation.hooks`.
    """
    labels = _choice_labels()
    fields = []
    for name, spec in _field_specs().items():
        choices = labels.get(name)
        if choices is None and spec.choices is not None:
            choices = [[v, v] for v in spec.choices]
        fields.append(
            {
                "name": name,
                "label": FIELD_LABELS.get(name, name),
                "kind": spec.kind,
                "ops": list(spec.ops),
                "choices": choices,
                "min": spec.minimum,
                "max": spec.maximum,
            }
        )
    actions = _builtin_actions()
    for name in sorted(RULE_ACTIONS):
        describe = RULE_ACTION_DESCRIPTIONS.get(name)
        described = describe() if describe is not None else {}
        actions.append(
            {
                "type": name,
                "label": described.get("label", name.replace("_", " ").capitalize()),
                "params": described.get("params", []),
            }
        )
    return {"fields": fields, "operators": OPERATORS, "actions": actions}


def _readable(value: Any, choices: list[list[Any]] | None) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_readable(v, choices) for v in value)
    names = {str(v): str(label) for v, label in choices or []}
    return names.get(str(value), str(value))


def rule_in_words(
    conditions: list[Any], actions: list[Any], schema: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """A rule's conditions and actions as the builder names them ("Harm category is
    Grooming", "Open an escalation: Lead review"), for lists people read. ``schema`` is
    :func:`rule_builder_schema` (passed in: one per page, not one per rule). Anything the
    schema doesn't know (an action of an app no longer installed) shows as stored."""
    fields = {f["name"]: f for f in schema["fields"]}
    kinds = {a["type"]: a for a in schema["actions"]}
    said_conditions = []
    for c in conditions:
        spec = fields.get(c.get("field"), {})
        op = schema["operators"].get(c.get("op"), c.get("op"))
        value = _readable(c.get("value"), spec.get("choices"))
        said_conditions.append(f"{spec.get('label', c.get('field'))} {op} {value}")
    said_actions = []
    for a in actions:
        kind = kinds.get(a.get("type"), {})
        params = [
            _readable(a[p["name"]], p.get("choices"))
            for p in kind.get("params", [])
            if a.get(p["name"]) not in (None, "")
        ]
        label = kind.get("label", a.get("type"))
        said_actions.append(f"{label}: {', '.join(params)}" if params else label)
    return said_conditions, said_actions


@dataclass
class RowErrors:
    """Validation messages by where they belong: a condition row, an action row (0-based, in
    the order of the submitted JSON), or the rule as a whole."""

    conditions: dict[int, list[str]] = field(default_factory=dict)
    actions: dict[int, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "conditions": {str(i): m for i, m in self.conditions.items()},
            "actions": {str(i): m for i, m in self.actions.items()},
            "general": self.general,
        }


# The validator's messages name their row: "condition 2: …", "action 1: …" (1-based).
_ROW = re.compile(r"^(condition|action) (\d+): ")
# Contradictions name the field they are about: "priority: the conditions contradict …".
_CONTRADICTION = re.compile(r"^([\w.]+): the conditions contradict each other")


def rule_errors_by_row(errors: list[str], conditions: Any, actions: Any) -> RowErrors:
    """Map `RuleInvalid` messages to the rows they concern.

    1. "condition N: …" and "action N: …" go to that row (when the rule has it).
    2. A contradiction between conditions ("priority: the conditions contradict …", "uk_linked
       cannot be both true and false") goes to every condition on that field.
    3. Anything else (no conditions, invalid JSON, no name) concerns the rule as a whole.
    """
    rows = RowErrors()
    conditions = conditions if isinstance(conditions, list) else []
    actions = actions if isinstance(actions, list) else []
    for message in errors:
        match = _ROW.match(message)
        if match:
            index = int(match.group(2)) - 1
            target, items = (
                (rows.conditions, conditions)
                if match.group(1) == "condition"
                else (rows.actions, actions)
            )
            if 0 <= index < len(items):
                target.setdefault(index, []).append(message)
                continue
        contradiction = _CONTRADICTION.match(message)
        about = (
            contradiction.group(1)
            if contradiction
            else "uk_linked"
            if message.startswith("uk_linked cannot be both")
            else None
        )
        hits = [
            i
            for i, cond in enumerate(conditions)
            if about and isinstance(cond, dict) and cond.get("field") == about
        ]
        for i in hits:
            rows.conditions.setdefault(i, []).append(message)
        if not hits:
            rows.general.append(message)
    return rows
