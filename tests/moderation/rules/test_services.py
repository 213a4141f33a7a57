"""Saving, applying and previewing rules (moderation.rules.services)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.utils import timezone

from core.audit import WORKER, audit_record
from core.models import AuditEvent
from moderation.models import Case, Escalation, EscalationRule, Item, RuleApplication
from moderation.rules.services import rule_preview, rule_save, rules_apply, rules_apply_many
from tests.moderation.factories import make_case, make_item, make_rule

_BACKFILL = importlib.import_module(
    "moderation.migrations.0008_notifications_recorded_first_rule_applications"
)._backfill_rule_applications


def _broken_rule(admin: Any, condition: dict[str, Any]) -> EscalationRule:
    """A rule corrupted behind validation's back (e.g. a bad data migration): it fails at run
    time."""
    rule = make_rule(admin, "broken", [condition], [{"type": "restrict_case"}])
    EscalationRule.objects.filter(pk=rule.pk).update(actions=[{"type": "set_priority"}])
    return rule


def _restrict_messages(admin: Any) -> Any:
    return rule_save(
        actor=admin,
        name="restrict messages",
        conditions=[{"field": "item.kind", "op": "eq", "value": "message"}],
        actions=[{"type": "restrict_case"}],
    )


@pytest.mark.django_db
class RuleApplicationTests:
    def test_an_application_is_recorded_as_a_row_with_its_effects(self, admin_user: Any) -> None:
        rule = _restrict_messages(admin_user)
        case = make_case(kind="message")
        assert rules_apply(case_id=case.pk, event="intake") == ["restrict messages"]
        application = RuleApplication.objects.get(case=case, rule=rule)
        assert application.version == 1 and application.event == "intake"
        assert application.effects == ["restricted"]
        assert rules_apply(case_id=case.pk, event="hashed") == []
        assert RuleApplication.objects.filter(case=case).count() == 1

    def test_a_new_rule_version_applies_again(self, admin_user: Any) -> None:
        rule = _restrict_messages(admin_user)
        case = make_case(kind="message")
        rules_apply(case_id=case.pk, event="intake")
        rule_save(
            actor=admin_user,
            rule=rule,
            name=rule.name,
            conditions=rule.conditions,
            actions=[{"type": "set_priority", "priority": 1}],
        )
        assert rules_apply(case_id=case.pk, event="decision") == ["restrict messages"]
        assert sorted(
            RuleApplication.objects.filter(case=case).values_list("version", flat=True)
        ) == [1, 2]

    def test_applications_recorded_only_in_the_audit_log_are_carried_over(
        self, admin_user: Any
    ) -> None:
        """Installations upgraded from before RuleApplication keep their rules applied once."""
        rule = _restrict_messages(admin_user)
        case = make_case(kind="message")
        audit_record(
            actor=WORKER,
            verb="rule.applied",
            obj=case,
            data={
                "rule": rule.pk,
                "name": rule.name,
                "version": 1,
                "event": "intake",
                "effects": ["restricted"],
            },
        )
        _BACKFILL(apps, None)
        _BACKFILL(apps, None)  # idempotent
        assert RuleApplication.objects.filter(case=case, rule=rule, version=1).count() == 1
        assert rules_apply(case_id=case.pk, event="hashed") == []

    def test_rules_run_in_order_and_record_why_on_the_case(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        make_rule(
            admin_user,
            "second",
            [{"field": "priority", "op": "eq", "value": 0}],
            [{"type": "restrict_case"}],
            order=20,
        )
        make_rule(
            admin_user,
            "first",
            [{"field": "text", "op": "contains_any", "value": ["meet tonight"]}],
            [{"type": "mark_immediate_risk"}],
            order=10,
        )
        with django_capture_on_commit_callbacks(execute=True):
            item = make_item(kind="message", category="grooming")
            Item.objects.filter(pk=item.pk).update(text="let's meet tonight, don't tell")
            applied = rules_apply(case_id=item.case_id, event="intake")
        assert applied == ["first", "second"]  # "first" made it P0, so "second" then matched
        case = Case.objects.get(pk=item.case_id)
        assert case.priority == 0 and case.immediate_risk and case.restricted
        assert any("rule 'first'" in r["reason"] for r in case.priority_reasons)
        assert Escalation.objects.filter(case=case, tier="immediate_risk").exists()

    def test_each_rule_applies_once_per_case_and_version(self, admin_user: Any) -> None:
        make_rule(
            admin_user,
            "esc",
            [{"field": "category", "op": "eq", "value": "grooming"}],
            [{"type": "open_escalation", "tier": "lead"}],
        )
        case = make_case(kind="message", category="grooming")
        assert rules_apply(case_id=case.pk, event="intake") in (["esc"], [])
        assert rules_apply(case_id=case.pk, event="decision") == []
        assert Escalation.objects.filter(case=case).count() == 1

    def test_rules_run_automatically_at_intake(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        make_rule(
            admin_user,
            "uk p1",
            [{"field": "category", "op": "in", "value": ["sextortion_coercion"]}],
            [{"type": "set_priority", "priority": 0}],
        )
        with django_capture_on_commit_callbacks(execute=True):
            case = make_case(kind="message", category="sextortion_coercion")
        case.refresh_from_db()
        assert case.priority == 0

    def test_a_rule_that_fails_at_run_time_is_disabled_and_never_blocks_intake(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        rule = _broken_rule(admin_user, {"field": "category", "op": "eq", "value": "grooming"})
        with django_capture_on_commit_callbacks(execute=True):
            case = make_case(kind="message", category="grooming")
        assert Case.objects.filter(pk=case.pk).exists()
        rule.refresh_from_db()
        assert not rule.enabled and "priority" in rule.last_error
        assert AuditEvent.objects.filter(verb="rule.disabled").exists()

    def test_with_no_enabled_rule_nothing_about_the_case_is_read(
        self, admin_user: Any, django_assert_num_queries: Any
    ) -> None:
        case = make_case(kind="message")
        rule = _restrict_messages(admin_user)
        EscalationRule.objects.filter(pk=rule.pk).update(enabled=False)
        with django_assert_num_queries(1):  # the enabled rules
            assert rules_apply(case_id=case.pk, event="intake") == []
        with django_assert_num_queries(1):
            assert rules_apply_many(case_ids=[case.pk, case.pk + 1], event="hashed") == 0

    def test_a_batch_reads_the_rules_once_and_drops_a_rule_that_fails(
        self, admin_user: Any
    ) -> None:
        _broken_rule(admin_user, {"field": "item.kind", "op": "eq", "value": "message"})
        _restrict_messages(admin_user)
        cases = [make_case(kind="message") for _ in range(3)]  # rules not run: no on_commit
        assert rules_apply_many(case_ids=[c.pk for c in cases], event="hashed") == 3
        assert AuditEvent.objects.filter(verb="rule.disabled").count() == 1
        assert all(Case.objects.get(pk=c.pk).restricted for c in cases)


@pytest.mark.django_db
class RuleSaveTests:
    def test_rule_changes_are_audited_and_bump_the_version(self, admin_user: Any) -> None:
        rule = make_rule(
            admin_user,
            "R",
            [{"field": "priority", "op": "lte", "value": 1}],
            [{"type": "restrict_case"}],
        )
        rule = rule_save(
            actor=admin_user,
            name="R",
            rule=rule,
            order=5,
            conditions=[{"field": "priority", "op": "lte", "value": 2}],
            actions=[{"type": "restrict_case"}],
        )
        assert rule.version == 2
        event = AuditEvent.objects.filter(verb="rule.updated").get()
        assert event.data["before"]["conditions"][0]["value"] == 1
        assert event.data["after"]["conditions"][0]["value"] == 2


@pytest.mark.django_db
class RulePreviewTests:
    def test_hash_list_distance_and_subject_conditions(self, admin_user: Any) -> None:
        case = make_case(kind="message", category="grooming")
        Item.objects.filter(case=case).update(
            subject_account_created_at=timezone.now() - timedelta(days=3), uk_linked=True
        )
        young = make_rule(
            admin_user,
            "young",
            [
                {"field": "subject.account_age_days", "op": "lte", "value": 7},
                {"field": "uk_linked", "op": "eq", "value": True},
            ],
            [{"type": "restrict_case"}],
        )
        assert rule_preview(conditions=young.conditions, actions=young.actions) == [case]
        far = [{"field": "match.distance", "op": "lte", "value": 10}]
        assert rule_preview(conditions=far, actions=young.actions) == []
