"""Escalations (moderation.services.escalations): acknowledging and recording the 999 call."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from moderation.services.escalations import (
    EscalationError,
    case_mark_immediate_risk,
    escalation_acknowledge,
    escalation_record_call,
)
from tests.conftest import client_for
from tests.moderation.factories import make_case


@pytest.mark.django_db
class EscalationAcknowledgeTests:
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


@pytest.mark.django_db
class EscalationRecordCallTests:
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
