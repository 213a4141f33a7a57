"""Reads (moderation.selectors)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from moderation.selectors import cases_held_by, queue_page
from moderation.services.queue import case_claim_next
from principles.models import Priority
from tests.moderation.factories import make_open_case


@pytest.mark.postgres
@pytest.mark.django_db
class CasesHeldByTests:
    def test_mine_reads_the_holder_index(self, moderator: Any) -> None:
        make_open_case(Priority.P2, timedelta(hours=1))
        make_open_case(Priority.P1, timedelta(hours=1))
        case = case_claim_next(user=moderator)
        assert [c.pk for c in cases_held_by(moderator)] == [case.pk]
        assert [c.pk for c in queue_page(user=moderator, mine=True)] == [case.pk]
