"""QA sampling: leads sample decided cases for blind second review (Ofcom C4: accuracy).

Imports models, `reports.selectors.compliance` (the period) and core. The agreement figures
are a selector (`reports.selectors.compliance.qa_agreement`).
"""

from __future__ import annotations

import random
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import DomainError
from moderation.models import Decision
from principles.models import HarmCategory

from .models import QaReview
from .selectors.compliance import Period


class QaError(DomainError):
    """A refused sample or review, with a message for the lead or reviewer."""


def qa_sample(
    *, lead: Any, reviewer: Any, period: Period, size: int, seed: int | None = None
) -> list[QaReview]:
    """Pick `size` decisions in the period that the reviewer did not make, for blind review."""
    if not 1 <= size <= 200:
        raise QaError("Sample between 1 and 200 decisions.")
    if not reviewer.has_perm("moderation.decide_case"):
        raise QaError("The reviewer must be able to decide cases.")
    pool = list(
        Decision.objects.filter(created_at__gte=period.start_at, created_at__lt=period.end_at)
        .exclude(moderator=reviewer)
        .exclude(qa_reviews__reviewer=reviewer)
        .values_list("pk", flat=True)
    )
    if not pool:
        # Say why: "no decisions" is wrong when there are some, but all by this reviewer (a
        # reviewer never checks their own work) or already reviewed by them.
        in_period = Decision.objects.filter(
            created_at__gte=period.start_at, created_at__lt=period.end_at
        )
        if not in_period.exists():
            raise QaError("No decisions in that period to sample.")
        own = in_period.filter(moderator=reviewer).count()
        name = reviewer.get_username()
        raise QaError(
            f"Nothing left to sample for {name} in that period: {own} of its "
            f"{in_period.count()} decision(s) were made by {name} (reviewers never check their "
            f"own decisions), and {name} has already reviewed the rest. Choose another "
            "reviewer or period."
        )
    chosen = random.Random(seed).sample(pool, min(size, len(pool)))
    with transaction.atomic():
        reviews = [
            QaReview.objects.create(decision_id=pk, reviewer=reviewer, sampled_by=lead)
            for pk in chosen
        ]
        audit_record(
            actor=lead,
            verb="qa.sampled",
            object_type="reports.qareview",
            object_id=",".join(str(r.pk) for r in reviews)[:64],
            data={"reviewer": reviewer.pk, "size": len(reviews), "period": period.label()},
        )
    return reviews


def qa_complete(
    *, review: QaReview, reviewer: Any, outcome: str, categories: list[HarmCategory], notes: str
) -> QaReview:
    if review.reviewer_id != reviewer.pk:
        raise QaError("This review is assigned to someone else.")
    if outcome not in Decision.Outcome.values:
        raise QaError("Choose an outcome.")
    with transaction.atomic():
        if not QaReview.objects.filter(pk=review.pk, completed_at__isnull=True).update(
            outcome=outcome, notes=notes[:5000], completed_at=timezone.now()
        ):
            raise QaError("This review is already complete.")
        review.categories.set(categories)
        audit_record(
            actor=reviewer,
            verb="qa.completed",
            obj=review,
            data={"agreed": outcome == review.decision.outcome},
        )
    review.refresh_from_db()
    return review
