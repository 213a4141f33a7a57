"""Rule actions: what a matching rule does to a case. Built-in actions are here; other apps
register more through `moderation.hooks.register_rule_action` (e.g. reports' draft_referral).
Called inside the rule's savepoint, with the case row locked."""

from __future__ import annotations

from typing import Any

from core.audit import WORKER
from core.enqueue import enqueue_on_commit
from moderation.hooks import RULE_ACTIONS
from moderation.models import Case, EscalationRule
from moderation.services.escalations import case_mark_immediate_risk, escalation_open


def rule_action_apply(*, case: Case, action: dict[str, Any], rule: EscalationRule) -> str:
    """Apply one action of `rule` to `case`; returns a short description of the effect."""
    kind = action["type"]
    params = {k: v for k, v in action.items() if k != "type"}
    reason = f"rule {rule.name!r}"
    if kind in RULE_ACTIONS:
        _, apply = RULE_ACTIONS[kind]
        return apply(case=case, params=params, actor=WORKER, rule=rule)
    if kind == "set_priority":
        locked = Case.objects.select_for_update().get(pk=case.pk)
        changed = locked.raise_priority(priority=params["priority"], category=None, reason=reason)
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
        channel, to = params["channel"], params["to"]
        enqueue_on_commit("moderation.send_rule_notification", case.pk, rule.pk, channel, to)
        return f"notify {channel} {to}"
    raise ValueError(f"unknown action {kind!r}")
