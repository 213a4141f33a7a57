"""Rule workflows: save a rule (validated, versioned, audited), apply the enabled rules to a
case (at most once per rule version), preview a rule, and enqueue the rules after a commit."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, connection, transaction

from core.audit import WORKER, Actor, audit_record
from core.enqueue import enqueue_on_commit
from moderation.models import Case, EscalationRule, RuleApplication
from moderation.rules.actions import rule_action_apply
from moderation.rules.engine import case_context, rule_fields, rule_matches
from moderation.rules.validation import rule_validate

logger = logging.getLogger(__name__)


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
        locked.save(
            update_fields=[
                "name",
                "conditions",
                "actions",
                "order",
                "enabled",
                "description",
                "version",
                "last_error",
                "updated_at",
            ]
        )
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


def _enabled_rules() -> list[EscalationRule]:
    # Most installations run with no rule enabled, and this is asked after every intake and
    # every hashing batch: a plain-SQL probe first, as compiling the ORM's query cost more
    # CPU than the read (~8 % of the worker's CPU with one-by-one intake; LOAD.md).
    q = connection.ops.quote_name
    table = q(EscalationRule._meta.db_table)
    enabled = q(EscalationRule._meta.get_field("enabled").column)
    with connection.cursor() as cursor:
        # Names from the model's meta, no values.
        cursor.execute(f"SELECT 1 FROM {table} WHERE {enabled} LIMIT 1")  # noqa: S608
        if cursor.fetchone() is None:
            return []
    return list(EscalationRule.objects.filter(enabled=True).order_by("order", "id"))


def rules_apply(
    *, case_id: int, event: str, rules: list[EscalationRule] | None = None
) -> list[str]:
    """Evaluate every enabled rule against the case, in order; apply the matching ones.

    1. A rule applies at most once per case and rule version: its `RuleApplication` row is
       the claim (unique on case, rule, version), written in the rule's savepoint before its
       actions, so a re-run or a concurrent worker skips it.
    2. Each rule runs in its own savepoint: a failure rolls back only that rule, which is then
       disabled with its error recorded and audited (and removed from `rules`, so a batch
       stops trying it).
    3. Effects are recorded on the case (priority_reasons: "why is this P0?") and audited.

    `rules` is the enabled rules, read once by a batch; without it they are read here. With no
    enabled rule nothing is read about the case, and the context holds only the fields the
    rules ask about: this task runs after every intake and every hashing batch.
    """
    if rules is None:
        rules = _enabled_rules()
    if not rules:
        return []
    case = Case.objects.select_related("category").filter(pk=case_id).first()
    if case is None:
        return []
    applied: list[str] = []
    fields = rule_fields(rules)
    ctx = case_context(case, fields=fields)
    for rule in list(rules):
        if not rule_matches(rule, ctx):
            continue
        try:
            with transaction.atomic():
                # The case row first, as every writer of a case locks it: a concurrent run of
                # the rules for this case waits here, then finds the application recorded.
                Case.objects.select_for_update().filter(pk=case.pk).first()
                if RuleApplication.objects.filter(
                    case=case, rule=rule, version=rule.version
                ).exists():
                    continue
                try:
                    with transaction.atomic():
                        application = RuleApplication.objects.create(
                            case=case, rule=rule, version=rule.version, event=event
                        )
                except IntegrityError:
                    continue  # applied meanwhile by another worker
                effects = [rule_action_apply(case=case, action=a, rule=rule) for a in rule.actions]
                application.effects = effects
                application.save(update_fields=["effects"])
                locked = Case.objects.select_for_update().get(pk=case.pk)
                changed = locked.add_reason(f"rule {rule.name!r} ({event}): {'; '.join(effects)}")
                locked.save(update_fields=[*changed, "updated_at"])
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
                ctx = case_context(case, fields=fields)
        except Exception as exc:
            logger.exception("Rule %s failed on case %s; disabling it", rule.pk, case_id)
            rules.remove(rule)
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


def rules_apply_many(*, case_ids: list[int], event: str) -> int:
    """The rules for several cases (one message after batch intake or a hashing batch): the
    enabled rules read once. Returns how many rules were applied."""
    rules = _enabled_rules()
    if not rules:
        return 0
    return sum(len(rules_apply(case_id=pk, event=event, rules=rules)) for pk in case_ids)


def rule_preview(*, conditions: Any, actions: Any, limit: int = 200) -> list[Case]:
    """Which of the most recent cases a (validated) rule would have matched."""
    rule_validate(conditions=conditions, actions=actions)
    probe = EscalationRule(name="preview", conditions=conditions, actions=actions)
    recent = Case.objects.select_related("category").order_by("-created_at")[:limit]
    return [case for case in recent if rule_matches(probe, case_context(case))]


def enqueue_rules(case_id: int | None, event: str) -> None:
    """Run the rules after the current transaction commits (never inside intake's)."""
    if case_id is not None:
        enqueue_on_commit("moderation.apply_rules", case_id, event)
