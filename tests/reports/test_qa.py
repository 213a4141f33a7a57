"""QA sampling and blind second review (reports.qa), with the agreement it feeds."""

from __future__ import annotations

from typing import Any

import pytest

from reports.models import QaReview
from reports.qa import QaError, qa_complete, qa_sample
from reports.selectors.compliance import qa_agreement
from tests.conftest import client_for

from .factories import decide, today


@pytest.mark.django_db
class QaTests:
    def test_blind_second_review_gives_agreement_per_category(
        self, moderator: Any, moderator2: Any, lead: Any
    ) -> None:
        for outcome in ("remove", "remove", "no_violation"):
            decide(moderator, "grooming", outcome=outcome)
        reviews = qa_sample(lead=lead, reviewer=moderator2, period=today(), size=3, seed=1)
        assert len(reviews) == 3
        page = client_for(moderator2).get(f"/compliance/qa/{reviews[0].pk}/").content.decode()
        assert "original decision is hidden" in page
        assert reviews[0].decision.outcome not in page.split("Your outcome")[0]
        for review in reviews:
            qa_complete(
                review=review, reviewer=moderator2, outcome="remove", categories=[], notes=""
            )
        [row] = qa_agreement(today())
        assert row == {"category": "grooming", "reviews": 3, "agreed": 2, "agreement": 0.667}
        with pytest.raises(QaError, match="already complete"):
            qa_complete(
                review=reviews[0], reviewer=moderator2, outcome="remove", categories=[], notes=""
            )
        assert QaReview.objects.filter(completed_at__isnull=False).count() == 3

    def test_a_reviewer_never_reviews_their_own_decisions(self, moderator: Any, lead: Any) -> None:
        with pytest.raises(QaError, match="No decisions in that period"):
            qa_sample(lead=lead, reviewer=moderator, period=today(), size=1)
        decide(moderator, "grooming")
        with pytest.raises(QaError, match=r"1 of its 1 decision\(s\) were made by mod1"):
            qa_sample(lead=lead, reviewer=moderator, period=today(), size=1)
