"""Selectors (reports.selectors): compliance metrics on known fixtures, periods, coverage,
transparency aggregates, and the packets a user may see."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.audit import SystemActor
from moderation.services.hashlists import hash_list_upsert
from principles.models import Principle
from reports.selectors.compliance import PeriodError, coverage, parse_period, principle_metrics
from reports.selectors.packets import packets_for
from reports.selectors.transparency import suppress, transparency_metrics
from tests.moderation.factories import make_case

from .factories import decide, drafted_packet, today

# Fields of our models that hold content or personal data: none may appear in a report.
PERSONAL_VALUES = (
    "subject-",
    "synthetic text",
    "demo_user",
    "192.0.2.",
    "mod1",
    "lead1",
    "example.org",
)


@pytest.mark.django_db
class MetricsTests:
    def test_per_principle_metrics_are_exact_on_known_fixtures(self, moderator: Any) -> None:
        decide(moderator, "grooming")
        decide(moderator, "grooming", outcome="no_violation")
        decide(moderator, "sextortion_coercion")
        make_case(kind="message", category="search_abuse")
        p3 = principle_metrics(Principle.objects.get(number=3), today())
        assert p3["items_flagged"] == 3  # grooming x2 and sextortion map to principle 3
        assert p3["actioned"] == 2  # the no_violation decision is not an action
        assert p3["referred"] == 0 and p3["sla_breaches"] == 0
        assert p3["hours_to_action"]["median"] is not None
        p6 = principle_metrics(Principle.objects.get(number=6), today())
        assert (p6["items_flagged"], p6["actioned"]) == (1, 0)
        assert principle_metrics(Principle.objects.get(number=9), today())["items_flagged"] == 0

    def test_a_period_with_no_data_gives_zeros_not_errors(self) -> None:
        period = parse_period("2020-01-01", "2020-01-31")
        metrics = principle_metrics(Principle.objects.get(number=1), period)
        assert metrics["items_flagged"] == 0 and metrics["hours_to_action"]["median"] is None

    @pytest.mark.parametrize(
        ("start", "end", "message"),
        [
            ("2026-02-01", "2026-01-01", "before it starts"),
            ("yesterday", "2026-01-01", "2026-01-31"),
        ],
    )
    def test_inverted_or_malformed_periods_are_refused_clearly(
        self, start: str, end: str, message: str
    ) -> None:
        with pytest.raises(PeriodError, match=message):
            parse_period(start, end)


@pytest.mark.django_db
class CoverageTests:
    def test_coverage_is_computed_from_configuration_and_data(self, moderator: Any) -> None:
        by_number = {c.number: c for c in coverage()}
        assert by_number[1].status == "gap"  # no enabled hash list yet
        assert by_number[9].status == "gap"
        assert by_number[10].status == "gap"
        hash_list_upsert(
            name="IWF list (synthetic)", algorithm="pdq", provider="iwf", actor=SystemActor("t")
        )
        decide(moderator, "grooming")
        by_number = {c.number: c for c in coverage()}
        assert by_number[1].status == "configured"
        assert by_number[10].status == "working"
        assert by_number[3].status == "working"
        assert any("flag(s) in the last 90 days" in e for e in by_number[3].evidence)


@pytest.mark.django_db
class TransparencyAggregateTests:
    def test_small_counts_are_suppressed_and_zero_is_shown(self) -> None:
        assert suppress(3, 10) == "<10" and suppress(0, 10) == 0 and suppress(10, 10) == 10
        assert suppress({"a": 2, "b": {"c": 12}}, 5) == {"a": "<5", "b": {"c": 12}}

    def test_a_report_holds_aggregates_only_never_content_or_personal_data(
        self, moderator: Any, settings: Any
    ) -> None:
        for _ in range(3):
            decide(moderator, "grooming")
        report = transparency_metrics(today(), threshold=2)
        text = json.dumps(report)
        for value in PERSONAL_VALUES:
            assert value not in text, value
        metrics = report["metrics"]
        assert metrics["items_received"] == 3
        assert metrics["decisions_by_outcome"] == {"remove": 3}
        assert metrics["principles"]["3"]["actioned"] == 3
        assert "methodology" in report and "'<2'" in report["methodology"]
        suppressed = transparency_metrics(today(), threshold=10)
        assert suppressed["metrics"]["items_received"] == "<10"
        assert "Counts from 1 to 9 are shown as '<10'" in suppressed["methodology"]


@pytest.mark.django_db
class PacketsForTests:
    def test_a_packet_is_visible_to_leads_and_admins_by_object_permission_only(
        self, moderator: Any, lead: Any, admin_user: Any, outsider: Any
    ) -> None:
        packet = drafted_packet(moderator, lead)
        assert list(packets_for(lead)) == [packet]
        assert list(packets_for(admin_user)) == [packet]
        assert list(packets_for(moderator)) == []
        assert list(packets_for(outsider)) == []
