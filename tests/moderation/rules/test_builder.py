"""The rule builder's server side (moderation.rules.builder): what the form offers, and which
row each validation message belongs to."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.rules.builder import rule_builder_schema, rule_errors_by_row, rule_in_words
from moderation.rules.validation import RuleInvalid, rule_validate
from principles.models import Priority
from reports.models import Destination


def _errors(conditions: Any, actions: Any) -> list[str]:
    with pytest.raises(RuleInvalid) as raised:
        rule_validate(conditions=conditions, actions=actions)
    return raised.value.errors


GROOMING = {"field": "category", "op": "eq", "value": "grooming"}


@pytest.mark.django_db
class RuleErrorsByRowTests:
    def test_a_message_about_a_condition_goes_beside_that_condition(self) -> None:
        conditions = [GROOMING, {"field": "match.distance", "op": "lte", "value": 999}]
        actions = [{"type": "restrict_case"}]
        rows = rule_errors_by_row(_errors(conditions, actions), conditions, actions)
        assert list(rows.conditions) == [1]
        assert "can never hold" in rows.conditions[1][0]
        assert rows.actions == {} and rows.general == []

    def test_a_message_about_an_action_goes_beside_that_action(self) -> None:
        actions = [
            {"type": "restrict_case"},
            {"type": "notify", "channel": "email", "to": "nobody"},
        ]
        rows = rule_errors_by_row(_errors([GROOMING], actions), [GROOMING], actions)
        assert rows.actions == {1: ["action 2: 'nobody' is not an email address"]}
        assert rows.conditions == {}

    def test_a_contradiction_goes_beside_every_condition_on_that_field(self) -> None:
        conditions = [
            {"field": "priority", "op": "lte", "value": 1},
            GROOMING,
            {"field": "priority", "op": "gte", "value": 3},
        ]
        actions = [{"type": "restrict_case"}]
        rows = rule_errors_by_row(_errors(conditions, actions), conditions, actions)
        assert sorted(rows.conditions) == [0, 2]
        assert "contradict" in rows.conditions[0][0] and rows.general == []

    def test_uk_linked_both_ways_goes_beside_both_conditions(self) -> None:
        conditions = [
            {"field": "uk_linked", "op": "eq", "value": True},
            {"field": "uk_linked", "op": "eq", "value": False},
        ]
        actions = [{"type": "restrict_case"}]
        rows = rule_errors_by_row(_errors(conditions, actions), conditions, actions)
        assert sorted(rows.conditions) == [0, 1]

    def test_messages_about_the_whole_rule_stay_general(self) -> None:
        rows = rule_errors_by_row(
            ["A rule needs at least one condition.", "Conditions is not valid JSON: x (line 1)"],
            None,
            [],
        )
        assert rows.general == [
            "A rule needs at least one condition.",
            "Conditions is not valid JSON: x (line 1)",
        ]
        assert rows.conditions == {} and rows.actions == {}

    def test_a_message_naming_a_row_the_rule_lacks_stays_general(self) -> None:
        rows = rule_errors_by_row(["condition 3: odd"], [GROOMING], [])
        assert rows.general == ["condition 3: odd"]

    def test_the_page_gets_rows_as_json_with_string_keys(self) -> None:
        rows = rule_errors_by_row(["action 1: bad"], [GROOMING], [{"type": "x"}])
        assert rows.as_json() == {
            "conditions": {},
            "actions": {"0": ["action 1: bad"]},
            "general": [],
        }


@pytest.mark.django_db
class RuleBuilderSchemaTests:
    def test_it_offers_every_field_the_validator_knows_with_its_choices(self) -> None:
        schema = rule_builder_schema()
        fields = {f["name"]: f for f in schema["fields"]}
        assert "category" in fields and "uk_linked" in fields
        assert "grooming" in [value for value, _ in fields["category"]["choices"]]
        assert [value for value, _ in fields["priority"]["choices"]] == [0, 1, 2, 3, 4]
        assert fields["match.distance"]["min"] == 0 and fields["match.distance"]["max"] == 256

    def test_destinations_come_from_reports_through_the_hooks(self) -> None:
        Destination.objects.update(enabled=False)
        Destination.objects.create(name="Test force", kind="police", police_force="Test force")
        schema = rule_builder_schema()
        draft = next(a for a in schema["actions"] if a["type"] == "draft_referral")
        destination = next(p for p in draft["params"] if p["name"] == "destination")
        assert [c[0] for c in destination["choices"]] == ["Test force"]
        priority = next(p for p in draft["params"] if p["name"] == "priority")
        assert priority["default"] == "urgent"

    def test_every_action_the_validator_accepts_is_offered(self) -> None:
        offered = {a["type"] for a in rule_builder_schema()["actions"]}
        assert offered >= {
            "set_priority",
            "mark_immediate_risk",
            "open_escalation",
            "restrict_case",
            "notify",
            "draft_referral",
        }


@pytest.mark.django_db
class RuleInWordsTests:
    def test_values_take_their_labels_and_lists_and_numbers_read_plainly(self) -> None:
        conditions, actions = rule_in_words(
            [
                {"field": "item.kind", "op": "in", "value": ["image", "video"]},
                {"field": "match.distance", "op": "lte", "value": 10},
            ],
            [{"type": "set_priority", "priority": 1}],
            rule_builder_schema(),
        )
        assert conditions == ["Item kind is any of Image, Video", "Match distance is at most 10"]
        assert actions == ["Raise the priority to: " + dict(Priority.choices)[1]]

    def test_what_the_schema_does_not_know_shows_as_stored(self) -> None:
        conditions, actions = rule_in_words(
            [{"field": "gone.field", "op": "eq", "value": "x"}],
            [{"type": "an_uninstalled_action"}],
            rule_builder_schema(),
        )
        assert (conditions, actions) == (["gone.field is x"], ["an_uninstalled_action"])
