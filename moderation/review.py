"""Review workflows: reveal media (with a reason, counted), decide, bulk-action known material."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Sum
from django.utils import timezone

from core.audit import audit_record
from principles.models import HarmCategory, Priority

from .models import Case, Decision, ExposureLift, Item, Media, Reveal
from .queue import CaseNotHeld


class ReviewError(Exception):
    """A refused review action, with a message for the moderator."""


class RevealRefused(ReviewError):
    pass


class StaleCase(ReviewError):
    """The form was for a hold that has ended (lease expired, released, or re-claimed)."""


# --- Exposure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exposure:
    reveals_today: int
    soft_limit: int
    hard_limit: int

    @property
    def needs_break(self) -> bool:
        return self.reveals_today >= self.soft_limit

    @property
    def blocked(self) -> bool:
        return self.reveals_today >= self.hard_limit

    @property
    def remaining(self) -> int:
        return max(0, self.hard_limit - self.reveals_today)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def exposure_for(user: Any, *, day: date | None = None) -> Exposure:
    day = day or timezone.now().date()
    start, end = _day_bounds(day)
    count = Reveal.objects.filter(user=user, created_at__gte=start, created_at__lt=end).count()
    extra = ExposureLift.objects.filter(user=user, day=day).aggregate(n=Sum("extra_reveals"))["n"]
    return Exposure(
        count,
        settings.SAFEGUARD_REVEAL_SOFT_LIMIT,
        settings.SAFEGUARD_REVEAL_HARD_LIMIT + (extra or 0),
    )


def exposure_aggregate(*, day: date | None = None) -> dict[str, Any]:
    """Leads see aggregates only: totals and how many people are near or at their limits —
    never a per-person league table."""
    day = day or timezone.now().date()
    start, end = _day_bounds(day)
    per_user = list(
        Reveal.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("user")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    soft, hard = settings.SAFEGUARD_REVEAL_SOFT_LIMIT, settings.SAFEGUARD_REVEAL_HARD_LIMIT
    return {
        "day": day,
        "total_reveals": sum(per_user),
        "people_revealing": len(per_user),
        "past_soft_limit": sum(1 for n in per_user if n >= soft),
        "at_hard_limit": sum(1 for n in per_user if n >= hard),
    }


def exposure_lift(*, user: Any, lead: Any, extra_reveals: int, reason: str) -> ExposureLift:
    if not reason.strip():
        raise ReviewError("Give a reason for lifting the limit.")
    if not 1 <= extra_reveals <= 200:
        raise ReviewError("Allow between 1 and 200 more reveals.")
    with transaction.atomic():
        lift = ExposureLift.objects.create(
            user=user,
            day=timezone.now().date(),
            extra_reveals=extra_reveals,
            reason=reason[:500],
            lifted_by=lead,
        )
        audit_record(
            actor=lead,
            verb="exposure.limit_lifted",
            obj=lift,
            data={"user": user.pk, "extra_reveals": extra_reveals},
        )
    return lift


# --- Reveal --------------------------------------------------------------------------------


def media_reveal(*, media: Media, case: Case, user: Any, reason: str) -> Reveal:
    """Record that `user` reveals `media` and why; refuse without a reason or past the limit.

    The reveal log is the single source for "was this file viewed at the provider" in
    referral packets, and for the exposure counters.
    """
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise RevealRefused("Say why you need to see this media (a reason is required).")
    if not user.has_perm("moderation.reveal_media"):
        raise RevealRefused("You may not reveal media.")
    if media.item.case_id != case.pk:
        raise RevealRefused("That media is not part of this case.")
    with transaction.atomic():
        # Lock the user's row: two reveals at once must not both slip under the hard limit.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        exposure = exposure_for(user)
        if exposure.blocked:
            raise RevealRefused(
                f"You have reached today's limit of {exposure.hard_limit} reveals. Take a break; "
                "a safety lead can lift the limit if the work needs it."
            )
        reveal = Reveal.objects.create(media=media, case=case, user=user, reason=reason[:500])
        audit_record(
            actor=user,
            verb="media.revealed",
            obj=media,
            data={"case": case.pk, "reveal": reveal.pk, "reason": reason[:500]},
        )
    return reveal


def reveal_grants_view(*, media: Media, user: Any, now: datetime | None = None) -> bool:
    """A media file may be served to a user only shortly after they revealed it."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.SAFEGUARD_REVEAL_WINDOW_SECONDS)
    return Reveal.objects.filter(media=media, user=user, created_at__gte=now - window).exists()


# --- Decisions ------------------------------------------------------------------------------


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
            if locked.priority > Priority.P1:
                locked.priority = Priority.P1
            locked.priority_reasons = [
                *locked.priority_reasons,
                {
                    "at": now.isoformat(),
                    "priority": locked.priority,
                    "reason": f"escalated to a safety lead by {moderator.get_username()}",
                },
            ]
        else:
            locked.status = Case.Status.DECIDED
            locked.decided_at = now
        locked.claimed_by = None
        locked.claimed_at = None
        locked.lease_expires_at = None
        locked.save()
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
        from .rules import enqueue_rules
        from .webhooks import webhook_enqueue_decision

        webhook_enqueue_decision(decision=decision)
        enqueue_rules(locked.pk, "decision")
    return decision


def case_is_known_material(case: Case) -> bool:
    """Every item of the case has media matching a verified known-hash list."""
    items = Item.objects.filter(case=case)
    if not items.exists():
        return False
    return not items.exclude(media__matches__hash_list__verified=True).exists()


def known_material_cases() -> Any:
    """Open cases eligible for bulk action from metadata alone (no reveal needed)."""
    unverified = Item.objects.filter(case=OuterRef("pk")).exclude(
        media__matches__hash_list__verified=True
    )
    return (
        Case.objects.filter(active=True, status=Case.Status.OPEN, immediate_risk=False)
        .annotate(n_items=Count("items"))
        .filter(n_items__gt=0)
        .exclude(Exists(unverified))
    )


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
