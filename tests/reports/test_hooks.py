"""What reports plugs into moderation (reports.hooks): the 999 follow-up, the rule action."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.hooks import CALL_RECORDED, RULE_ACTIONS
from moderation.rules.services import rule_save
from moderation.rules.validation import RuleInvalid
from moderation.services.escalations import case_mark_immediate_risk
from reports import hooks
from reports.models import ReferralPacket
from reports.packets import PacketError, packet_approve, packet_submit
from tests.moderation.factories import make_case, record_999_call


class RegistrationTests:
    def test_ready_registers_the_follow_up_and_the_rule_action(self) -> None:
        assert hooks.draft_after_call in CALL_RECORDED
        assert RULE_ACTIONS["draft_referral"] == (
            hooks.draft_referral_validate,
            hooks.draft_referral_apply,
        )


@pytest.mark.django_db
class CallFollowUpTests:
    def test_a_rule_or_999_draft_is_submitted_by_a_lead_who_then_cannot_approve_it(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message", category="grooming"),
            actor=moderator,
            reason="meeting tonight",
        )
        record_999_call(escalation, lead, "Thames Valley Police", "CAD 77/28NOV")
        packet = ReferralPacket.objects.get(escalation=escalation)
        assert packet.priority == "immediate" and packet.status == "draft"
        assert packet.destination.police_force == "Thames Valley Police"
        packet_submit(packet=packet, lead=lead)
        with pytest.raises(PacketError, match="second safety lead"):
            packet_approve(packet=packet, lead=lead, declaration_confirmed=True)
        packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)


@pytest.mark.django_db
class RuleActionTests:
    def test_a_rule_can_draft_a_referral_to_an_existing_destination(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        with pytest.raises(RuleInvalid, match="no destination named 'Nowhere'"):
            rule_save(
                actor=admin_user,
                name="r",
                conditions=[{"field": "category", "op": "eq", "value": "grooming"}],
                actions=[{"type": "draft_referral", "destination": "Nowhere"}],
            )
        rule_save(
            actor=admin_user,
            name="r",
            conditions=[{"field": "category", "op": "eq", "value": "grooming"}],
            actions=[{"type": "draft_referral", "destination": "NCA / CEOP"}],
        )
        with django_capture_on_commit_callbacks(execute=True):
            case = make_case(kind="message", category="grooming")
        packet = ReferralPacket.objects.get()
        assert list(packet.cases.all()) == [case] and packet.status == "draft"
