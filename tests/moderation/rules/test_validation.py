"""Rule validation (moderation.rules.validation): every rejection says why."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.rules.validation import RuleInvalid, rule_validate


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
