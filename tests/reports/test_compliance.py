"""Compliance metrics on known fixtures, coverage, transparency reports, QA agreement."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from core.audit import SystemActor
from moderation.hashlists import hash_list_upsert
from moderation.models import Decision
from moderation.queue import case_claim_next
from moderation.review import decision_record
from principles.models import HarmCategory, Principle
from reports.compliance import (
    Period,
    PeriodError,
    coverage,
    parse_period,
    principle_metrics,
    suppress,
    transparency_metrics,
)
from reports.models import QaReview, TransparencyReport
from reports.qa import QaError, qa_complete, qa_sample
from tests.conftest import client_for
from tests.moderation.factories import make_case

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


def _decide(moderator: Any, code: str, outcome: str = "remove") -> Decision:
    make_case(kind="message", category=code)
    case = case_claim_next(user=moderator)
    return decision_record(
        case=case,
        moderator=moderator,
        outcome=outcome,
        categories=[HarmCategory.objects.get(code=code)],
        rationale="synthetic",
    )


def _today() -> Period:
    return parse_period(timezone.now().date().isoformat(), timezone.now().date().isoformat())


@pytest.mark.django_db
class MetricsTests:
    def test_per_principle_metrics_are_exact_on_known_fixtures(self, moderator: Any) -> None:
        _decide(moderator, "grooming")
        _decide(moderator, "grooming", outcome="no_violation")
        _decide(moderator, "sextortion_coercion")
        make_case(kind="message", category="search_abuse")
        p3 = principle_metrics(Principle.objects.get(number=3), _today())
        assert p3["items_flagged"] == 3  # grooming x2 and sextortion map to principle 3
        assert p3["actioned"] == 2  # the no_violation decision is not an action
        assert p3["referred"] == 0 and p3["sla_breaches"] == 0
        assert p3["hours_to_action"]["median"] is not None
        p6 = principle_metrics(Principle.objects.get(number=6), _today())
        assert (p6["items_flagged"], p6["actioned"]) == (1, 0)
        assert principle_metrics(Principle.objects.get(number=9), _today())["items_flagged"] == 0

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
        _decide(moderator, "grooming")
        by_number = {c.number: c for c in coverage()}
        assert by_number[1].status == "configured"
        assert by_number[10].status == "working"
        assert by_number[3].status == "working"
        assert any("flag(s) in the last 90 days" in e for e in by_number[3].evidence)


@pytest.mark.django_db
class TransparencyTests:
    def test_small_counts_are_suppressed_and_zero_is_shown(self) -> None:
        assert suppress(3, 10) == "<10" and suppress(0, 10) == 0 and suppress(10, 10) == 10
        assert suppress({"a": 2, "b": {"c": 12}}, 5) == {"a": "<5", "b": {"c": 12}}

    def test_a_report_holds_aggregates_only_never_content_or_personal_data(
        self, moderator: Any, settings: Any
    ) -> None:
        for _ in range(3):
            _decide(moderator, "grooming")
        report = transparency_metrics(_today(), threshold=2)
        text = json.dumps(report)
        for value in PERSONAL_VALUES:
            assert value not in text, value
        metrics = report["metrics"]
        assert metrics["items_received"] == 3
        assert metrics["decisions_by_outcome"] == {"remove": 3}
        assert metrics["principles"]["3"]["actioned"] == 3
        assert "methodology" in report and "'<2'" in report["methodology"]
        suppressed = transparency_metrics(_today(), threshold=10)["metrics"]
        assert suppressed["items_received"] == "<10"

    def test_the_command_prints_json_and_csv_and_refuses_bad_input(self, moderator: Any) -> None:
        _decide(moderator, "grooming")
        day = timezone.now().date().isoformat()
        out = StringIO()
        call_command(
            "transparency_report", "--start", day, "--end", day, "--format", "json", stdout=out
        )
        assert json.loads(out.getvalue())["period"]["start"] == day
        out = StringIO()
        call_command(
            "transparency_report", "--start", day, "--end", day, "--format", "csv", stdout=out
        )
        assert out.getvalue().startswith("metric,value\n")
        with pytest.raises(CommandError, match="Unknown format"):
            call_command(
                "transparency_report",
                "--start",
                day,
                "--end",
                day,
                "--format",
                "xml",
                stdout=StringIO(),
            )
        with pytest.raises(CommandError, match="before it starts"):
            call_command(
                "transparency_report",
                "--start",
                "2026-02-01",
                "--end",
                "2026-01-01",
                stdout=StringIO(),
            )

    def test_the_console_generates_a_report_with_progress_and_exports(
        self, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = client_for(lead)
        day = timezone.now().date().isoformat()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/compliance/transparency/", {"start": day, "end": day})
        report = TransparencyReport.objects.get()
        assert response.status_code == 302 and report.status == "done"
        assert report.progress == 100
        assert client.get(f"/compliance/transparency/{report.pk}/?format=csv")[
            "Content-Type"
        ].startswith("text/csv")
        assert json.loads(client.get(f"/compliance/transparency/{report.pk}/?format=json").content)[
            "metrics"
        ]
        assert (
            b"Methodology"
            in client.get(f"/compliance/transparency/{report.pk}/?format=html").content
        )
        response = client.post("/compliance/transparency/", {"start": day, "end": "2000-01-01"})
        assert TransparencyReport.objects.count() == 1


@pytest.mark.django_db
class QaTests:
    def test_blind_second_review_gives_agreement_per_category(
        self, moderator: Any, moderator2: Any, lead: Any
    ) -> None:
        for outcome in ("remove", "remove", "no_violation"):
            _decide(moderator, "grooming", outcome=outcome)
        reviews = qa_sample(lead=lead, reviewer=moderator2, period=_today(), size=3, seed=1)
        assert len(reviews) == 3
        page = client_for(moderator2).get(f"/compliance/qa/{reviews[0].pk}/").content.decode()
        assert "original decision is hidden" in page
        assert reviews[0].decision.outcome not in page.split("Your outcome")[0]
        for review in reviews:
            qa_complete(
                review=review, reviewer=moderator2, outcome="remove", categories=[], notes=""
            )
        from reports.compliance import qa_agreement

        [row] = qa_agreement(_today())
        assert row == {"category": "grooming", "reviews": 3, "agreed": 2, "agreement": 0.667}
        with pytest.raises(QaError, match="already complete"):
            qa_complete(
                review=reviews[0], reviewer=moderator2, outcome="remove", categories=[], notes=""
            )
        assert QaReview.objects.filter(completed_at__isnull=False).count() == 3

    def test_a_reviewer_never_reviews_their_own_decisions(self, moderator: Any, lead: Any) -> None:
        _decide(moderator, "grooming")
        with pytest.raises(QaError, match="No decisions"):
            qa_sample(lead=lead, reviewer=moderator, period=_today(), size=1)


@pytest.mark.django_db
class CompliancePermissionTests:
    def test_leads_and_admins_see_compliance_moderators_and_outsiders_do_not(
        self, lead: Any, admin_user: Any, moderator: Any, outsider: Any
    ) -> None:
        urls = [
            "/compliance/",
            "/compliance/principles/1/",
            "/compliance/operations/",
            "/compliance/transparency/",
            "/compliance/qa/",
        ]
        for url in urls:
            assert client_for(lead).get(url).status_code == 200, url
            assert client_for(admin_user).get(url).status_code == 200, url
            assert client_for(moderator).get(url).status_code == 403, url
            assert client_for(outsider).get(url).status_code == 403, url

    def test_pages_render_charts_and_explain_bad_periods(self, lead: Any, moderator: Any) -> None:
        _decide(moderator, "grooming")
        html = client_for(lead).get("/compliance/principles/3/").content.decode()
        assert "<svg" in html and 'role="img"' in html
        response = client_for(lead).get(
            "/compliance/operations/?start=2026-05-01&end=2026-01-01", follow=True
        )
        assert "before it starts" in response.content.decode()
        assert client_for(lead).get("/compliance/principles/13/").status_code == 404
