"""Exposure to media: reveals (with a reason, counted, time-limited) and the daily limits that
protect moderators' wellbeing; leads lift a limit or see aggregates, never a league table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from core.audit import audit_record
from core.errors import DomainError
from core.evidence_crypto import (
    EvidenceCryptoError,
    EvidenceReader,
    evidence_open,
    evidence_sha256,
)
from moderation.models import Case, Decision, ExposureLift, Media, MediaFrame, Reveal


class RevealRefused(DomainError):
    """A reveal refused (no reason, no permission, past today's limit)."""


class RepeatRevealUnconfirmed(RevealRefused):
    """A decided case's media revealed again by someone who has seen it, unconfirmed."""


class ExposureError(DomainError):
    """A refused change to a moderator's exposure limit."""


class MediaWithheld(DomainError):
    """The media file is not served: purged, not revealed just now, or failing custody."""

    status = 404
    code = "not_found"
    field = None


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
        raise ExposureError("Give a reason for lifting the limit.")
    if not 1 <= extra_reveals <= 200:
        raise ExposureError("Allow between 1 and 200 more reveals.")
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


@dataclass(frozen=True)
class RepeatReveal:
    """What the case page says before a decided case's media is revealed again."""

    decision: Decision
    views: int  # the user's earlier reveals of this whole media

    @property
    def needs_confirmation(self) -> bool:
        return self.views > 0

    @property
    def question(self) -> str:
        decided = (
            f"This case was decided on {self.decision.created_at:%Y-%m-%d %H:%M} UTC by "
            f"{self.decision.moderator.get_username()}"
        )
        if not self.views:
            return f"{decided}. Revealing its media more than once asks you to confirm each time."
        times = "once" if self.views == 1 else f"{self.views} times"
        return f"{decided}; you have already viewed this media {times} — reveal again?"


def repeat_reveals(*, case: Case, user: Any) -> dict[int, RepeatReveal]:
    """For a case with a decision: per media of the case, the user's earlier whole-media
    reveals and the latest decision (empty when the case has no decision)."""
    decision = (
        Decision.objects.filter(case=case).select_related("moderator").order_by("-created_at")
    ).first()
    if decision is None:
        return {}
    views = dict(
        Reveal.objects.filter(case=case, user=user, frame__isnull=True)
        .values("media")
        .annotate(n=Count("id"))
        .values_list("media", "n")
    )
    media_ids = Media.objects.filter(item__case=case).values_list("pk", flat=True)
    return {pk: RepeatReveal(decision, views.get(pk, 0)) for pk in media_ids}


def media_reveal(
    *,
    media: Media,
    case: Case,
    user: Any,
    reason: str,
    frame: MediaFrame | None = None,
    confirm_repeat: bool = False,
) -> Reveal:
    """Record that `user` reveals `media` — or one `frame` of a video's contact sheet — and
    why; refuse without a reason or past the limit. Each frame is a reveal of its own.

    Once the case has a decision, revealing the whole media again — when this user has
    revealed it before — needs `confirm_repeat` as well as a reason (RepeatRevealUnconfirmed
    otherwise): the decision no longer needs the media, and each further look is exposure.
    A contact-sheet frame is a small still and is not held to this.

    The reveal log is the single source for "was this file viewed at the provider" in
    referral packets (whole-file reveals only: a frame is not the file), and for the exposure
    counters (every reveal counts).
    """
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise RevealRefused("Say why you need to see this media (a reason is required).")
    if not user.has_perm("moderation.reveal_media"):
        raise RevealRefused("You may not reveal media.")
    if media.item.case_id != case.pk:
        raise RevealRefused("That media is not part of this case.")
    if _held_by_someone_else(case, user):
        raise RevealRefused(
            "Another moderator holds this case: only they, or a safety lead, may reveal its "
            "media while they work on it."
        )
    if frame is not None and (frame.media_id != media.pk or not frame.thumbnail):
        raise RevealRefused("That frame is not on this media's contact sheet.")
    with transaction.atomic():
        # Lock the user's row: two reveals at once must not both slip under the hard limit.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        exposure = exposure_for(user)
        if exposure.blocked:
            raise RevealRefused(
                f"You have reached today's limit of {exposure.hard_limit} reveals. Take a break; "
                "a safety lead can lift the limit if the work needs it."
            )
        # Counted under the user's row lock: two reveals at once can't both be "the first".
        repeat = repeat_reveals(case=case, user=user).get(media.pk) if frame is None else None
        if repeat is not None and repeat.needs_confirmation and not confirm_repeat:
            raise RepeatRevealUnconfirmed(
                f"{repeat.question} Tick “Yes, reveal it again” to confirm."
            )
        reveal = Reveal.objects.create(
            media=media, frame=frame, case=case, user=user, reason=reason[:500]
        )
        data: dict[str, Any] = {"case": case.pk, "reveal": reveal.pk, "reason": reason[:500]}
        if repeat is not None and repeat.needs_confirmation:
            data.update(repeat_confirmed=True, earlier_views=repeat.views)
        if frame is not None:
            data.update(frame=frame.frame, timestamp=frame.timestamp)
        audit_record(actor=user, verb="media.revealed", obj=media, data=data)
    return reveal


def _held_by_someone_else(case: Case | None, user: Any) -> bool:
    """Exposure is limited to the person working the case: while another moderator holds it
    (a live lease), a moderator may not reveal its media; leads may (they supervise)."""
    if case is None or user.has_perm("moderation.view_all_cases"):
        return False
    return (
        case.claimed_by_id is not None
        and case.claimed_by_id != user.pk
        and case.lease_expires_at is not None
        and case.lease_expires_at > timezone.now()
    )


def reveal_grants_view(
    *, media: Media, user: Any, now: datetime | None = None, frame: MediaFrame | None = None
) -> bool:
    """A media file may be served to a user only shortly after they revealed it; a contact
    sheet frame, shortly after they revealed that frame (or the whole media)."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.SAFEGUARD_REVEAL_WINDOW_SECONDS)
    recent = Reveal.objects.filter(media=media, user=user, created_at__gte=now - window)
    if frame is None:
        return recent.filter(frame__isnull=True).exists()
    return recent.filter(Q(frame=frame) | Q(frame__isnull=True)).exists()


def media_open_for_view(*, media: Media, user: Any) -> EvidenceReader:
    """Open a media file for the audited media view, for a user who may see its case.

    Refused (MediaWithheld) when the bytes were purged, when the user has not revealed it in
    the last few minutes, or when the stored bytes no longer hash to the custody SHA-256 —
    which is itself audited. The first view of each reveal is audited, after the custody
    check; a video player's further requests within that reveal are served without hashing
    the whole file again.
    """
    if media.purged_at is not None:
        raise MediaWithheld("This evidence was deleted under the retention policy")
    if _held_by_someone_else(media.item.case, user):
        raise MediaWithheld("Another moderator holds this case")
    window = timedelta(seconds=settings.SAFEGUARD_REVEAL_WINDOW_SECONDS)
    reveal = (
        Reveal.objects.filter(
            media=media,
            user=user,
            frame__isnull=True,
            created_at__gte=timezone.now() - window,
        )
        .order_by("-created_at")
        .first()
    )
    if reveal is None:
        raise MediaWithheld("Reveal this media with a reason first")
    if reveal.viewed_at is None:
        # Decrypting authenticates every chunk (GCM); the plaintext must still hash to the
        # custody SHA-256 taken at intake.
        try:
            problem = (
                None
                if evidence_sha256(media.file.path) == media.sha256
                else "the stored bytes no longer hash to the custody SHA-256"
            )
        except (EvidenceCryptoError, OSError) as exc:
            problem = str(exc)[:500]
        if problem is not None:
            audit_record(
                actor=user, verb="media.custody_mismatch", obj=media, data={"problem": problem}
            )
            raise MediaWithheld("Evidence integrity check failed; the incident was logged")
        with transaction.atomic():
            # Conditional: two first requests at once audit one view.
            if Reveal.objects.filter(pk=reveal.pk, viewed_at__isnull=True).update(
                viewed_at=timezone.now()
            ):
                audit_record(
                    actor=user,
                    verb="media.viewed",
                    obj=media,
                    data={"case": media.item.case_id, "reveal": reveal.pk},
                )
    return _open_evidence(media.file.path)


def _open_evidence(path: str) -> EvidenceReader:
    try:
        return evidence_open(path)
    except (EvidenceCryptoError, OSError) as exc:
        raise MediaWithheld("This evidence cannot be read; the incident was logged") from exc


def media_frame_open_for_view(*, frame: MediaFrame, user: Any) -> EvidenceReader:
    """Open a contact-sheet frame (a small JPEG derived from a video) for the audited frame
    view, for a user who may see its case and revealed it just now. Every view is audited."""
    media = frame.media
    if media.purged_at is not None or not frame.thumbnail:
        raise MediaWithheld("This evidence was deleted under the retention policy")
    if not reveal_grants_view(media=media, user=user, frame=frame):
        raise MediaWithheld("Reveal this frame with a reason first")
    handle = _open_evidence(frame.thumbnail.path)
    try:
        # A thumbnail is small: authenticate all of it before anything is sent.
        while handle.read(1024 * 1024):
            pass
        handle.seek(0)
    except EvidenceCryptoError as exc:
        handle.close()
        audit_record(
            actor=user, verb="media.custody_mismatch", obj=media, data={"frame": frame.frame}
        )
        raise MediaWithheld("Evidence integrity check failed; the incident was logged") from exc
    audit_record(
        actor=user,
        verb="media.frame_viewed",
        obj=media,
        data={"case": media.item.case_id, "frame": frame.frame, "timestamp": frame.timestamp},
    )
    return handle
