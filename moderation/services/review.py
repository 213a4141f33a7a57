"""Review: a moderator's decision on a case they hold; bulk action on known material."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import Conflict, DomainError
from moderation.models import Case, Decision
from moderation.rules.services import enqueue_rules
from moderation.selectors import case_is_known_material
from moderation.services.queue import CaseNotHeld
from moderation.services.webhooks import webhook_enqueue_decision
from principles.models import HarmCategory, Priority


class ReviewError(DomainError):
    """A refused review action, with a message for the moderator."""


class StaleCase(ReviewError, Conflict):
    """The form was for a hold that has ended (lease expired, released, or re-claimed)."""


def _principles_of(categories: list[HarmCategory]) -> list[int]:
    return sorted({p.number for c in categories for p in c.principles.all()})


def _check_held(case: Case, user: Any, claimed_at: str | None) -> Case:
    locked = Case.objects.select_for_update().get(pk=case.pk)
    if not locked.is_held_by(user):
        raise CaseNotHeld(
            "You don't hold this case (it was released, reassigned or its lease "
            "expired). Nothing was recorded; claim it again to decide."
        )
    if (
        claimed_at is not None
        and locked.claimed_at is not None
        and claimed_at != locked.claimed_at.isoformat()
    ):
        raise StaleCase(
            "This form belongs to an earlier hold of the case. Nothing was "
            "recorded; reload the case."
        )
    return locked


def decision_record(
    *,
    case: Case,
    moderator: Any,
    outcome: str,
    categories: list[HarmCategory],
    rationale: str,
    claimed_at: str | None = None,
) -> Decision:
    """Record a moderator's decision on a case they hold.

    1. The case must be held by the moderator with a live lease (else CaseNotHeld → 409), and
       a form must belong to the current hold (else StaleCase → 409).
    2. The decision carries the principles of its categories.
    3. "Escalate" sends the case to the safety leads' queue (restricted, at least P1);
       any other outcome closes the case as decided.
    4. The platform is told by a signed webhook, after commit.
    """
    if outcome not in Decision.Outcome.values:
        raise ReviewError(f"Unknown outcome {outcome!r}.")
    if outcome != Decision.Outcome.NO_VIOLATION and not categories:
        raise ReviewError("Choose at least one harm category for this outcome.")
    if (
        outcome in (Decision.Outcome.ESCALATE, Decision.Outcome.REMOVE_AND_REPORT)
        and not rationale.strip()
    ):
        raise ReviewError("Write a rationale: a safety lead or the police will read it.")
    now = timezone.now()
    with transaction.atomic():
        locked = _check_held(case, moderator, claimed_at)
        decision = Decision.objects.create(
            case=locked,
            moderator=moderator,
            outcome=outcome,
            principles=_principles_of(categories),
            rationale=rationale[:20000],
        )
        decision.categories.set(categories)
        if outcome == Decision.Outcome.ESCALATE:
            locked.status = Case.Status.OPEN
            locked.restricted = True
            locked.priority = min(locked.priority, Priority.P1)
            changed = ["status", "restricted", "priority"]
            changed += locked.add_reason(
                f"escalated to a safety lead by {moderator.get_username()}", at=now
            )
        else:
            locked.status = Case.Status.DECIDED
            locked.decided_at = now
            changed = ["status", "decided_at"]
        changed += locked.clear_hold()
        locked.save(update_fields=[*changed, "updated_at"])
        audit_record(
            actor=moderator,
            verb="decision.recorded",
            obj=decision,
            data={
                "case": locked.pk,
                "outcome": outcome,
                "categories": [c.code for c in categories],
                "principles": decision.principles,
            },
        )
        webhook_enqueue_decision(decision=decision)
        enqueue_rules(locked.pk, "decision")
    return decision


def case_bulk_decide(
    *, case_ids: list[int], moderator: Any, outcome: str, rationale: str
) -> list[Decision]:
    """Action known-material cases in bulk, without revealing media.

    Each case is taken with a conditional UPDATE (still open) so that nobody else is working it,
    re-checked for eligibility, and decided with the known-material category.
    """
    if outcome not in (Decision.Outcome.REMOVE, Decision.Outcome.REMOVE_AND_REPORT):
        raise ReviewError("Bulk actions can only remove, or remove and report.")
    category = HarmCategory.objects.prefetch_related("principles").get(code="known_csam")
    decisions: list[Decision] = []
    now = timezone.now()
    for case_id in case_ids:
        with transaction.atomic():
            taken = Case.objects.filter(
                pk=case_id, status=Case.Status.OPEN, immediate_risk=False
            ).update(
                status=Case.Status.IN_REVIEW,
                claimed_by=moderator,
                claimed_at=now,
                lease_expires_at=now + timedelta(minutes=5),
            )
            if not taken:
                continue
            case = Case.objects.get(pk=case_id)
            if not case_is_known_material(case):
                raise ReviewError(
                    f"Case {case.reference} has items without a verified "
                    "known-hash match; review it individually."
                )
            decision = decision_record(
                case=case,
                moderator=moderator,
                outcome=outcome,
                categories=[category],
                rationale=rationale
                or "Verified known-hash match; actioned from metadata without viewing.",
            )
            Decision.objects.filter(pk=decision.pk).update(bulk=True)
            decisions.append(decision)
    return decisions
