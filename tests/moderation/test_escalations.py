"""Escalation rules, escalations, paging, SLA breaches and the 999 path."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from core import outbound
from core.models import AuditEvent
from moderation.escalations import (
    EscalationError,
    case_mark_immediate_risk,
    escalation_acknowledge,
    escalation_page,
    escalation_record_call,
    escalations_due_for_repage,
    oncall_users,
    sla_check,
)
from moderation.models import Case, Escalation, EscalationRule, Notification, OnCallShift
from moderation.rules import RuleInvalid, rule_preview, rule_save, rule_validate, rules_apply
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_item


def _rule(admin: Any, name: str, conditions: list[Any], actions: list[Any], **kw: Any) -> Any:
    return rule_save(actor=admin, name=name, conditions=conditions, actions=actions, **kw)


@pytest.mark.django_db
class RuleValidationTests:
    @pytest.mark.parametrize(
        ("conditions", "actions", "message"),
        [
            (
                [{"field": "colour", "op": "eq", "value": "red"}],
                [{"type": "restrict_case"}],
                "unknown field 'colour'",
            ),
            (
                [
                    {"field": "priority", "op": "lte", "value": 1},
                    {"field": "priority", "op": "gte", "value": 3},
                ],
                [{"type": "restrict_case"}],
                "contradict",
            ),
            (
                [{"field": "match.distance", "op": "lte", "value": 999}],
                [{"type": "restrict_case"}],
                "can never hold",
            ),
            (
                [{"field": "category", "op": "eq", "value": "made_up"}],
                [{"type": "restrict_case"}],
                "cannot be 'made_up'",
            ),
            (
                [{"field": "category", "op": "eq", "value": "grooming"}],
                [{"type": "set_priority", "priority": 9}],
                "priority 0-4",
            ),
            (
                [{"field": "category", "op": "eq", "value": "grooming"}],
                [{"type": "teleport"}],
                "unknown action 'teleport'",
            ),
            (
                [{"field": "category", "op": "eq", "value": "grooming"}],
                [{"type": "notify", "channel": "email", "to": "nobody"}],
                "not an email address",
            ),
            ([], [{"type": "restrict_case"}], "at least one condition"),
            (
                [
                    {"field": "uk_linked", "op": "eq", "value": True},
                    {"field": "uk_linked", "op": "eq", "value": False},
                ],
                [{"type": "restrict_case"}],
                "both true and false",
            ),
        ],
    )
    def test_it_rejects_bad_rules_with_the_reason(
        self, conditions: Any, actions: Any, message: str
    ) -> None:
        with pytest.raises(RuleInvalid, match=message):
            rule_validate(conditions=conditions, actions=actions)

    def test_the_api_creates_rules_for_admins_only_and_explains_rejections(
        self, admin_user: Any, lead: Any, outsider: Any
    ) -> None:
        rule = {
            "name": "Grooming to leads",
            "conditions": [{"field": "category", "op": "eq", "value": "grooming"}],
            "actions": [{"type": "open_escalation", "tier": "lead"}],
        }
        response = client_for(admin_user).post("/api/v1/escalation-rules", rule, format="json")
        assert response.status_code == 201 and response.json()["version"] == 1
        bad = {**rule, "name": "Bad", "conditions": [{"field": "x", "op": "eq", "value": 1}]}
        response = client_for(admin_user).post("/api/v1/escalation-rules", bad, format="json")
        assert response.status_code == 400
        assert "unknown field 'x'" in json.dumps(response.json())
        assert (
            client_for(lead).post("/api/v1/escalation-rules", rule, format="json").status_code
            == 403
        )
        assert client_for(outsider).get("/api/v1/escalation-rules").status_code == 403
        assert (
            client_for(admin_user).get("/api/v1/escalation-rules").json()[0]["name"]
            == "Grooming to leads"
        )

    def test_rule_changes_are_audited_and_bump_the_version(self, admin_user: Any) -> None:
        rule = _rule(
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

    def test_the_console_form_shows_errors_and_previews_matches(self, admin_user: Any) -> None:
        make_case(kind="message", category="grooming")
        client = client_for(admin_user)
        response = client.post(
            "/rules/new",
            {
                "name": "X",
                "order": "1",
                "enabled": "on",
                "conditions": "[{bad json",
                "actions": "[]",
            },
        )
        assert response.status_code == 400 and "not valid JSON" in response.content.decode()
        conditions = json.dumps([{"field": "category", "op": "eq", "value": "grooming"}])
        actions = json.dumps([{"type": "restrict_case"}])
        response = client.post(
            "/rules/new",
            {
                "name": "X",
                "order": "1",
                "conditions": conditions,
                "actions": actions,
                "preview": "1",
            },
        )
        assert "would have matched 1 of" in response.content.decode()
        assert not EscalationRule.objects.exists()
        response = client.post(
            "/rules/new",
            {
                "name": "X",
                "order": "1",
                "enabled": "on",
                "conditions": conditions,
                "actions": actions,
            },
        )
        assert response.status_code == 302 and EscalationRule.objects.count() == 1


@pytest.mark.django_db
class RuleEvaluationTests:
    def test_rules_run_in_order_and_record_why_on_the_case(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        _rule(
            admin_user,
            "second",
            [{"field": "priority", "op": "eq", "value": 0}],
            [{"type": "restrict_case"}],
            order=20,
        )
        _rule(
            admin_user,
            "first",
            [{"field": "text", "op": "contains_any", "value": ["meet tonight"]}],
            [{"type": "mark_immediate_risk"}],
            order=10,
        )
        with django_capture_on_commit_callbacks(execute=True):
            item = make_item(kind="message", category="grooming")
            from moderation.models import Item

            Item.objects.filter(pk=item.pk).update(text="let's meet tonight, don't tell")
            applied = rules_apply(case_id=item.case_id, event="intake")
        assert applied == ["first", "second"]  # "first" made it P0, so "second" then matched
        case = Case.objects.get(pk=item.case_id)
        assert case.priority == 0 and case.immediate_risk and case.restricted
        assert any("rule 'first'" in r["reason"] for r in case.priority_reasons)
        assert Escalation.objects.filter(case=case, tier="immediate_risk").exists()

    def test_each_rule_applies_once_per_case_and_version(self, admin_user: Any) -> None:
        _rule(
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
        _rule(
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
        rule = _rule(
            admin_user,
            "broken",
            [{"field": "category", "op": "eq", "value": "grooming"}],
            [{"type": "restrict_case"}],
        )
        # Corrupt the stored rule behind validation's back (e.g. a bad data migration).
        EscalationRule.objects.filter(pk=rule.pk).update(actions=[{"type": "set_priority"}])
        with django_capture_on_commit_callbacks(execute=True):
            case = make_case(kind="message", category="grooming")
        assert Case.objects.filter(pk=case.pk).exists()
        rule.refresh_from_db()
        assert not rule.enabled and "priority" in rule.last_error
        assert AuditEvent.objects.filter(verb="rule.disabled").exists()

    def test_hash_list_distance_and_subject_conditions(self, admin_user: Any) -> None:
        from moderation.models import Item

        case = make_case(kind="message", category="grooming")
        Item.objects.filter(case=case).update(
            subject_account_created_at=timezone.now() - timedelta(days=3), uk_linked=True
        )
        young = _rule(
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


@pytest.mark.django_db
class ImmediateRiskTests:
    def test_one_action_makes_the_case_p0_and_pages_on_call_leads(
        self, moderator: Any, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        case = make_case(kind="message", category="grooming")
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(moderator).post(
                f"/api/v1/cases/{case.pk}/immediate-risk",
                {"reason": "arranging to meet"},
                format="json",
            )
        assert response.status_code == 201
        case.refresh_from_db()
        assert case.immediate_risk and case.priority == 0
        escalation = Escalation.objects.get(case=case)
        assert escalation.tier == "immediate_risk" and escalation.page_count == 1
        assert [m.to for m in mail.outbox] == [[lead.email]]
        assert "CHILD AT IMMEDIATE RISK" in mail.outbox[0].subject

    def test_the_console_button_needs_confirmation(self, moderator: Any) -> None:
        case = make_case(kind="message")
        client = client_for(moderator)
        client.post(f"/cases/{case.pk}/immediate-risk", {"reason": "x"})
        assert not Escalation.objects.exists()
        client.post(f"/cases/{case.pk}/immediate-risk", {"reason": "x", "confirm": "yes"})
        assert Escalation.objects.filter(case=case).exists()

    def test_paging_repeats_until_acknowledged_then_moves_up_the_tiers(
        self, lead: Any, lead2: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_PAGES_PER_LEVEL = 2
        settings.SAFEGUARD_REPAGE_SECONDS = 60
        now = timezone.now()
        OnCallShift.objects.create(
            user=lead, weekday=now.weekday(), starts="00:00", ends="23:59:59", tier=1
        )
        OnCallShift.objects.create(
            user=lead2, weekday=now.weekday(), starts="00:00", ends="23:59:59", tier=2
        )
        assert oncall_users(level=1) == [lead]
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=lead, reason="test"
        )
        escalation_page(escalation_id=escalation.pk)
        later = now + timedelta(minutes=5)
        assert escalations_due_for_repage(now=later) == [escalation.pk]
        escalation_page(escalation_id=escalation.pk)
        escalations_due_for_repage(now=later + timedelta(minutes=5))
        escalation.refresh_from_db()
        assert escalation.level == 2 and escalation.page_count == 2
        escalation_page(escalation_id=escalation.pk)
        assert set(mail.outbox[-1].to) == {lead.email, lead2.email}
        escalation_acknowledge(escalation=escalation, lead=lead2)
        assert escalation_page(escalation_id=escalation.pk) == 0  # paging stops
        assert escalations_due_for_repage(now=later + timedelta(hours=1)) == []

    def test_acknowledging_twice_and_recording_a_call_you_dont_hold_are_refused(
        self, lead: Any, lead2: Any
    ) -> None:
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=lead, reason="test"
        )
        escalation_acknowledge(escalation=escalation, lead=lead)
        with pytest.raises(EscalationError, match="Already acknowledged"):
            escalation_acknowledge(escalation=escalation, lead=lead2)
        with pytest.raises(EscalationError, match="Only the lead who acknowledged"):
            escalation_record_call(
                escalation=escalation,
                lead=lead2,
                called_at=timezone.now(),
                police_force="Kent Police",
                incident_reference="CAD 1",
            )

    def test_the_call_record_keeps_force_reference_and_timings(self, lead: Any) -> None:
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=lead, reason="test"
        )
        escalation_acknowledge(escalation=escalation, lead=lead)
        with pytest.raises(EscalationError, match="force from the list"):
            escalation_record_call(
                escalation=escalation,
                lead=lead,
                called_at=timezone.now(),
                police_force="Gotham PD",
                incident_reference="1",
            )
        escalation = escalation_record_call(
            escalation=escalation,
            lead=lead,
            called_at=timezone.now(),
            police_force="Metropolitan Police Service",
            incident_reference="CAD 4411/28NOV",
        )
        assert escalation.called_by == lead and escalation.incident_reference == "CAD 4411/28NOV"
        with pytest.raises(EscalationError, match="already recorded"):
            escalation_record_call(
                escalation=escalation,
                lead=lead,
                called_at=timezone.now(),
                police_force="Kent Police",
                incident_reference="x",
            )
        page = client_for(lead).get(f"/escalations/{escalation.pk}/").content.decode()
        assert "CAD 4411/28NOV" in page and "Acknowledged" in page


@pytest.mark.django_db
class SlaTests:
    def test_breached_escalations_page_the_next_tier_and_breached_cases_escalate(
        self, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=lead, reason="test"
        )
        stale = make_case(kind="message", category="search_abuse")
        later = timezone.now() + timedelta(days=4)
        with django_capture_on_commit_callbacks(execute=True):
            result = sla_check(now=later)
        assert result == {"escalations": 1, "cases": 2}
        escalation.refresh_from_db()
        assert escalation.breached_at is not None and escalation.level == 2
        assert Escalation.objects.filter(case=stale, tier="lead").exists()
        # The new lead escalations are themselves past due at `later`; then nothing is left.
        assert sla_check(now=later) == {"escalations": 2, "cases": 0}
        assert sla_check(now=later) == {"escalations": 0, "cases": 0}  # recorded once
        board = client_for(lead).get("/escalations/").content.decode()
        assert "past SLA" in board


@pytest.mark.django_db
class NotificationTests:
    def test_no_notification_carries_media_or_content(
        self, admin_user: Any, lead: Any, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_PAGING_WEBHOOK_URL = "https://pager.example/hook"
        _rule(
            admin_user,
            "notify",
            [{"field": "item.kind", "op": "eq", "value": "image"}],
            [
                {"type": "notify", "channel": "webhook", "to": "https://chat.example/hook"},
                {"type": "notify", "channel": "email", "to": "team@example.org"},
                {"type": "mark_immediate_risk"},
            ],
        )
        sent: list[dict[str, Any]] = []
        with (
            mock.patch.object(
                outbound,
                "send",
                side_effect=lambda url, body, headers: (
                    sent.append(body) or outbound.OutboundResponse(200, "")
                ),
            ),
            django_capture_on_commit_callbacks(execute=True),
        ):
            item = make_item(kind="image")
        media = item.media
        texts = (
            [json.dumps(b) for b in sent]
            + [m.body + m.subject for m in mail.outbox]
            + [n.body for n in Notification.objects.all()]
        )
        assert len(sent) >= 2 and mail.outbox
        for text in texts:
            assert media.sha256 not in text and "synthetic text" not in text
            assert "/media/" not in text and "base64" not in text
        assert Notification.objects.filter(status="sent").count() >= 3


@pytest.mark.django_db
class EscalationAccessTests:
    def test_moderators_and_outsiders_cannot_open_the_board(
        self, moderator: Any, outsider: Any
    ) -> None:
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=moderator, reason="x"
        )
        for user in (moderator, outsider):
            assert client_for(user).get("/escalations/").status_code == 403
            assert client_for(user).get(f"/escalations/{escalation.pk}/").status_code == 403
            assert (
                client_for(user).post(f"/escalations/{escalation.pk}/acknowledge").status_code
                == 403
            )
