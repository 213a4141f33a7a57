"""Hash hygiene: verdicts on matches, and quarantine of list hashes that misfire.

One bad hash must not flood the queue or action innocent content. A list hash is quarantined
when reviewers mark its matches false positives repeatedly, or when it matches more distinct
items in an hour than any real hash plausibly would (flood control). A quarantined hash's
matches are still recorded and shown, but raise no case and justify no bulk action, until a
safety lead reviews it: released back to matching, or withdrawn. Admins are told at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from core.enqueue import enqueue_on_commit
from core.errors import DomainError
from moderation.models import Case, HashList, KnownHash, Match
from moderation.services.notifications import notification_send


class VerdictRefused(DomainError):
    """A verdict that can't be recorded (not your case, unknown verdict)."""


class QuarantineError(DomainError):
    """A quarantine review that can't be done."""


def match_verdict_record(*, match: Match, user: Any, verdict: str) -> Match:
    """Record a reviewer's verdict on a match (the holder of its case, or a lead); a false
    positive may quarantine its hash. Audited; a second verdict replaces the first."""
    if verdict not in Match.Verdict.values:
        raise VerdictRefused(f"Unknown verdict {verdict!r}.")
    case = Case.objects.get(pk=match.media.item.case_id)
    if not (case.is_held_by(user) or user.has_perm("moderation.view_all_cases")):
        raise VerdictRefused("Claim the case to give a verdict on its matches.")
    with transaction.atomic():
        Match.objects.filter(pk=match.pk).update(
            verdict=verdict, verdict_by=user, verdict_at=timezone.now()
        )
        audit_record(
            actor=user,
            verb="match.verdict",
            obj=match,
            data={"verdict": verdict, "known_hash": match.known_hash_id, "case": case.pk},
        )
        if verdict == Match.Verdict.FALSE_POSITIVE:
            released = (
                KnownHash.objects.filter(pk=match.known_hash_id)
                .values_list("released_at", flat=True)
                .first()
            )
            verdicts = Match.objects.filter(
                known_hash_id=match.known_hash_id, verdict=Match.Verdict.FALSE_POSITIVE
            )
            if released is not None:  # a lead cleared the earlier ones
                verdicts = verdicts.filter(verdict_at__gt=released)
            false_positives = verdicts.count()
            if false_positives >= settings.SAFEGUARD_FALSE_POSITIVES_TO_QUARANTINE:
                known_hash_quarantine(
                    known_hash_id=match.known_hash_id,
                    reason=f"{false_positives} false-positive verdicts",
                    actor=user,
                )
    match.refresh_from_db()
    return match


def flood_check(*, known_hash_id: int, actor: Actor = WORKER) -> bool:
    """After a match is recorded: quarantine its hash if it matched more distinct items in the
    last hour than SAFEGUARD_FLOOD_ITEMS_PER_HOUR. Call inside the matching transaction, for
    perceptual matches of new media only: an exact digest can't misfire (widely shared known
    material matches often, rightly), and a retroactive rescan matches a backlog at once.
    Returns whether it quarantined the hash."""
    since = timezone.now() - timedelta(hours=1)
    items = (
        Match.objects.filter(known_hash_id=known_hash_id, created_at__gte=since)
        .values("media__item_id")
        .distinct()
        .count()
    )
    if items <= settings.SAFEGUARD_FLOOD_ITEMS_PER_HOUR:
        return False
    return known_hash_quarantine(
        known_hash_id=known_hash_id,
        reason=f"matched {items} distinct items within an hour (flood control)",
        actor=actor,
    )


def known_hash_quarantine(*, known_hash_id: int, reason: str, actor: Actor) -> bool:
    """Quarantine a list hash (once: a conditional UPDATE), audited, and alert the admins
    after commit. Returns whether this call quarantined it."""
    now = timezone.now()
    if not KnownHash.objects.filter(pk=known_hash_id, quarantined_at__isnull=True).update(
        quarantined_at=now, quarantine_reason=reason[:200]
    ):
        return False
    known = KnownHash.objects.select_related("hash_list").get(pk=known_hash_id)
    audit_record(
        actor=actor,
        verb="known_hash.quarantined",
        obj=known,
        data={"list": known.hash_list.name, "reason": reason[:200]},
    )
    enqueue_on_commit("moderation.alert_quarantine", known_hash_id, now.isoformat())
    return True


def quarantine_alert(*, known_hash_id: int, at: str) -> int:
    """Email the admins that a list hash was quarantined (identifiers and a link only);
    returns how many notifications were sent. Sent once per quarantine."""
    known = KnownHash.objects.select_related("hash_list").filter(pk=known_hash_id).first()
    if known is None or known.quarantined_at is None:
        return 0
    admins = list(
        get_user_model()
        .objects.filter(is_active=True, groups__name="Admin")
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )
    if not admins:
        return 0
    subject = f"[Safeguard] A hash in {known.hash_list.name!r} was quarantined"
    body = (
        f"List {known.hash_list.name!r}, entry {known.pk}: {known.quarantine_reason}.\n"
        "Its matches are shown but raise nothing until a safety lead reviews it:\n"
        f"{settings.SITE_URL}/hash-lists/quarantine\n"
    )
    _, sent = notification_send(
        key=f"quarantine:{known.pk}:{at}",
        channel="email",
        to=admins,
        subject=subject,
        body=body,
        context={"known_hash": known.pk},
    )
    return int(sent)


def known_hash_review(*, known_hash: KnownHash, lead: Any, action: str) -> KnownHash:
    """A lead's review of a quarantined hash: "release" (matching resumes) or "withdraw" (no
    longer matched; its matches stay in history). Audited."""
    if action not in ("release", "withdraw"):
        raise QuarantineError(f"Unknown action {action!r}.")
    now = timezone.now()
    changes: dict[str, Any] = {"quarantined_at": None, "quarantine_reason": ""}
    if action == "withdraw":
        changes["withdrawn_at"] = now
    else:
        changes["released_at"] = now
    with transaction.atomic():
        if not KnownHash.objects.filter(pk=known_hash.pk, quarantined_at__isnull=False).update(
            **changes
        ):
            raise QuarantineError("This hash is not in quarantine (someone reviewed it first).")
        # The list's index must drop or take back the entry.
        HashList.objects.filter(pk=known_hash.hash_list_id).update(
            version=F("version") + 1, updated_at=now
        )
        audit_record(
            actor=lead,
            verb=f"known_hash.{'released' if action == 'release' else 'withdrawn'}",
            obj=known_hash,
            data={"reason_was": known_hash.quarantine_reason},
        )
    known_hash.refresh_from_db()
    return known_hash
