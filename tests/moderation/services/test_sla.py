"""SLA breaches (moderation.services.sla): escalations page the next tier, cases escalate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from moderation.models import Escalation
from moderation.services.escalations import case_mark_immediate_risk
from moderation.services.sla import sla_check
from tests.conftest import client_for
from tests.moderation.factories import make_case


@pytest.mark.django_db
class SlaCheckTests:
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
