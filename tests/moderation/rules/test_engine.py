"""The rule engine's case context (moderation.rules.engine)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from moderation.models import Item
from moderation.rules.engine import CONTEXT_FIELDS, case_context, rule_fields
from tests.moderation.factories import make_case, make_rule


@pytest.mark.django_db
class CaseContextTests:
    def test_a_subset_of_fields_agrees_with_the_whole_context(self) -> None:
        case = make_case(kind="message", category="grooming")
        Item.objects.filter(case=case).update(
            text="Meet Tonight", subject_account_created_at=timezone.now() - timedelta(days=2)
        )
        now = timezone.now()
        whole = case_context(case, now=now)
        assert set(whole) == CONTEXT_FIELDS
        for field in CONTEXT_FIELDS:
            part = case_context(case, now=now, fields={field})
            assert part[field] == whole[field], field

    def test_fields_nobody_asks_about_are_not_read(self, django_assert_num_queries: Any) -> None:
        case = make_case(kind="message")
        with django_assert_num_queries(0):
            assert case_context(case, fields={"priority"}) == {"priority": case.priority}
        with django_assert_num_queries(1):  # the matches only
            ctx = case_context(case, fields={"match.distance", "hash_list"})
        assert ctx == {"priority": case.priority, "match.distance": None, "hash_list": set()}

    def test_rule_fields_are_the_fields_of_the_conditions(self, admin_user: Any) -> None:
        rule = make_rule(
            admin_user,
            "r",
            [
                {"field": "uk_linked", "op": "eq", "value": True},
                {"field": "priority", "op": "lte", "value": 1},
            ],
            [{"type": "restrict_case"}],
        )
        assert rule_fields([rule]) == {"uk_linked", "priority"}
