"""Paging on-call leads (moderation.services.paging): repeats until acknowledged, then moves up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from moderation.models import OnCallShift
from moderation.services.escalations import case_mark_immediate_risk, escalation_acknowledge
from moderation.services.paging import escalation_page, escalations_due_for_repage, oncall_users
from tests.moderation.factories import make_case


@pytest.mark.django_db
class EscalationPagingTests:
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
