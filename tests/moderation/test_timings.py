"""Assignment timings (moderation.timings): time to first claim, time held and time to decision,
from claim events and decisions with controlled timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.models import AuditEvent
from moderation.models import Case, Decision
from moderation.services.queue import case_claim_next, case_release
from moderation.services.review import decision_record
from moderation.timings import (
    case_timings,
    duration_label,
    timings_by_priority,
    timings_from_events,
)
from principles.models import HarmCategory
from tests.moderation.factories import make_case

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def timings(events: list[tuple[float, str]], **kwargs: Any) -> Any:
    kwargs.setdefault("decided_at", None)
    kwargs.setdefault("held_now", False)
    kwargs.setdefault("now", at(1000))
    return timings_from_events(
        created_at=T0, events=[(at(m), verb) for m, verb in events], **kwargs
    )


class TimingsFromEventsTests:
    def test_it_adds_up_every_hold_until_its_release_or_the_decision(self) -> None:
        result = timings(
            [
                (10, "case.claimed"),
                (15, "case.released"),
                (40, "case.claimed"),
                (52, "decision"),
            ],
            decided_at=at(52),
        )
        assert result.to_first_claim == timedelta(minutes=10)
        assert result.held == timedelta(minutes=17)
        assert result.holds == 2 and not result.held_now
        assert result.to_decision == timedelta(minutes=52)

    def test_a_reassignment_ends_one_hold_and_starts_the_next(self) -> None:
        result = timings([(5, "case.claimed"), (20, "case.reassigned"), (30, "case.lease_expired")])
        assert result.held == timedelta(minutes=25) and result.holds == 2

    def test_a_reassignment_of_an_open_case_is_its_first_claim(self) -> None:
        result = timings([(7, "case.reassigned"), (9, "case.released")])
        assert result.to_first_claim == timedelta(minutes=7)
        assert result.held == timedelta(minutes=2)

    def test_a_lapsed_lease_ends_the_hold(self) -> None:
        result = timings([(3, "case.claimed"), (33, "case.lease_expired")])
        assert result.held == timedelta(minutes=30)

    def test_the_current_hold_counts_up_to_now(self) -> None:
        result = timings([(10, "case.claimed")], held_now=True, now=at(25))
        assert result.held == timedelta(minutes=15) and result.held_now

    def test_an_open_hold_on_a_case_nobody_holds_is_left_out_not_guessed(self) -> None:
        result = timings([(10, "case.claimed")], held_now=False, now=at(25))
        assert result.held == timedelta() and result.holds == 1 and not result.held_now

    def test_events_are_taken_in_time_order(self) -> None:
        result = timings([(15, "case.released"), (10, "case.claimed")])
        assert result.held == timedelta(minutes=5)

    def test_a_case_never_claimed_has_no_time_to_first_claim(self) -> None:
        result = timings([(30, "decision")], decided_at=at(30))
        assert result.to_first_claim is None and result.held == timedelta()
        assert result.to_decision == timedelta(minutes=30)
        assert result.to_first_claim_label == "—" and result.held_label == "0 s"


class DurationLabelTests:
    @pytest.mark.parametrize(
        ("minutes", "label"),
        [
            (None, "—"),
            (0.5, "30 s"),
            (12.4, "12 min"),
            (60, "1 h"),
            (185, "3 h 5 min"),
            (24 * 60, "1 d"),
            (52 * 60, "2 d 4 h"),
        ],
    )
    def test_it_says_durations_in_words(self, minutes: float | None, label: str) -> None:
        assert duration_label(minutes) == label


def _event(case: Case, verb: str, when: datetime) -> None:
    AuditEvent.objects.create(
        created_at=when,
        actor_label="test",
        verb=verb,
        object_type="moderation.case",
        object_id=str(case.pk),
    )


def _decided(case: Case, moderator: Any, when: datetime, priority: int) -> Case:
    decision = Decision.objects.create(case=case, moderator=moderator, outcome="no_violation")
    Decision.objects.filter(pk=decision.pk).update(created_at=when)
    Case.objects.filter(pk=case.pk).update(
        status=Case.Status.DECIDED, decided_at=when, priority=priority
    )
    return Case.objects.get(pk=case.pk)


@pytest.mark.django_db
class CaseTimingsTests:
    def test_it_reads_the_claim_events_and_decisions_of_the_case(self, moderator: Any) -> None:
        case = make_case(kind="text")
        Case.objects.filter(pk=case.pk).update(created_at=T0)
        _event(case, "case.claimed", at(4))
        _event(case, "case.lease_expired", at(14))
        _event(case, "case.claimed", at(20))
        other = make_case(kind="text")
        _event(other, "case.claimed", at(1))  # another case's events are not this one's
        case = _decided(case, moderator, at(26), priority=2)
        result = case_timings(case)
        assert result.to_first_claim == timedelta(minutes=4)
        assert result.held == timedelta(minutes=16) and result.holds == 2
        assert result.to_decision == timedelta(minutes=26)

    def test_a_real_claim_release_claim_and_decision_are_counted(self, moderator: Any) -> None:
        case = make_case(kind="text", category="search_abuse")
        assert case_claim_next(user=moderator).pk == case.pk
        case_release(case=Case.objects.get(pk=case.pk), user=moderator)
        assert case_claim_next(user=moderator).pk == case.pk
        held = case_timings(Case.objects.get(pk=case.pk))
        assert held.holds == 2 and held.held_now and held.to_decision is None
        decision_record(
            case=Case.objects.get(pk=case.pk),
            moderator=moderator,
            outcome="remove",
            categories=[HarmCategory.objects.get(code="search_abuse")],
            rationale="",
        )
        done = case_timings(Case.objects.get(pk=case.pk))
        assert done.holds == 2 and not done.held_now
        assert done.to_first_claim is not None and done.to_decision is not None
        assert done.to_first_claim <= done.to_decision


@pytest.mark.django_db
class TimingsByPriorityTests:
    def test_median_and_p90_per_priority_for_cases_decided_in_the_period(
        self, moderator: Any
    ) -> None:
        # Three P1 cases claimed after 10, 20 and 30 minutes, held 5 minutes, decided then.
        for n, wait in enumerate((10, 20, 30)):
            case = make_case(kind="text")
            Case.objects.filter(pk=case.pk).update(created_at=at(n))
            _event(case, "case.claimed", at(n + wait))
            _decided(case, moderator, at(n + wait + 5), priority=1)
        # A P3 case actioned without a claim; a P1 case decided after the period.
        bulk = make_case(kind="text")
        Case.objects.filter(pk=bulk.pk).update(created_at=T0)
        _decided(bulk, moderator, at(60), priority=3)
        late = make_case(kind="text")
        Case.objects.filter(pk=late.pk).update(created_at=T0)
        _decided(late, moderator, at(60 * 24 * 3), priority=1)

        rows = timings_by_priority(start=T0, end=at(60 * 24))
        by = {row["label"]: row for row in rows}
        assert [row["label"] for row in rows] == ["P1", "P3", "All"]
        p1 = by["P1"]
        assert p1["cases"] == 3
        assert p1["to_first_claim"]["median_min"] == 20.0
        assert p1["to_first_claim"]["p90_min"] == 28.0
        assert p1["to_first_claim"]["median"] == "20 min"
        assert p1["held"]["median_min"] == 5.0 and p1["held"]["n"] == 3
        assert p1["to_decision"]["median_min"] == 25.0
        p3 = by["P3"]
        assert p3["to_first_claim"]["n"] == 0 and p3["to_first_claim"]["median"] == "—"
        assert p3["held"]["n"] == 0 and p3["to_decision"]["median_min"] == 60.0
        assert by["All"]["cases"] == 4 and by["All"]["to_decision"]["n"] == 4

    def test_a_period_without_decisions_has_no_rows(self) -> None:
        assert timings_by_priority(start=T0, end=at(60)) == []
