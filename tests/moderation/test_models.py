from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from moderation.models import Case
from principles.models import HarmCategory, Priority


def _case(**kwargs: Any) -> Case:
    defaults: dict[str, Any] = {
        "subject_key": "acme:someone",
        "source": "acme",
        "priority": Priority.P3,
        "sla_due_at": timezone.now() + timedelta(hours=24),
    }
    return Case(**{**defaults, **kwargs})


@pytest.mark.django_db
class CaseTests:
    def test_reasons_record_the_priority_they_explain_and_keep_the_newest(self) -> None:
        case = _case()
        for n in range(Case.REASONS_KEPT + 5):
            assert case.add_reason(f"reason {n}") == ["priority_reasons"]
        assert len(case.priority_reasons) == Case.REASONS_KEPT
        assert case.priority_reasons[-1]["reason"] == f"reason {Case.REASONS_KEPT + 4}"
        assert case.priority_reasons[0]["priority"] == Priority.P3

    def test_raising_priority_never_lowers_it_and_pulls_the_sla_in(self) -> None:
        grooming = HarmCategory.objects.get(code="grooming")
        case = _case()
        changed = case.raise_priority(
            priority=grooming.default_priority, category=grooming, reason="r"
        )
        assert case.priority == grooming.default_priority and case.category == grooming
        assert {"priority", "category", "sla_due_at", "priority_reasons"} <= set(changed)
        assert case.raise_priority(priority=Priority.P4, category=None, reason="later") == []
        assert case.priority == grooming.default_priority

    def test_clearing_a_hold_ends_claim_and_lease_together(self) -> None:
        case = _case(claimed_at=timezone.now(), lease_expires_at=timezone.now())
        assert case.clear_hold() == ["claimed_by", "claimed_at", "lease_expires_at"]
        assert case.claimed_by is None and case.claimed_at is None
        assert case.lease_expires_at is None
