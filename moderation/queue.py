"""The review queue: claim the next case with a lease, renew, release, expire."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record

from .models import Case

_CLAIM_SQL = """
WITH next_case AS (
    SELECT id FROM moderation_case
    WHERE status = 'open' {restricted_clause}
    ORDER BY priority, sla_due_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE moderation_case AS c
SET status = 'in_review', claimed_by_id = %s, claimed_at = %s, lease_expires_at = %s,
    updated_at = %s
FROM next_case
WHERE c.id = next_case.id
RETURNING c.id
"""


class CaseNotHeld(Exception):
    """The caller does not hold the case (never claimed, released, or the lease expired)."""


def _lease_seconds() -> int:
    return settings.SAFEGUARD_LEASE_SECONDS


def case_claim_next(*, user: Any, actor: Actor | None = None) -> Case | None:
    """Claim the top open case for `user`, or return the case they already hold.

    PostgreSQL: ONE statement — select the head of the open queue with FOR UPDATE SKIP LOCKED
    and flip it to in_review with a lease, RETURNING its id. Concurrent claimers skip rows
    another transaction has locked instead of queueing behind it, so two people can never
    hold the same case and nobody waits. The partial index on open rows serves the ORDER BY.
    SQLite (embedded default): writers are serialised by IMMEDIATE transactions, so a read
    followed by a conditional UPDATE (status still open) is correct there.
    Moderators without view_all_cases never claim restricted cases (leads assign those).
    """
    actor = actor if actor is not None else user
    now = timezone.now()
    lease = now + timedelta(seconds=_lease_seconds())
    held = (
        Case.objects.filter(claimed_by=user, status=Case.Status.IN_REVIEW, lease_expires_at__gt=now)
        .order_by("claimed_at")
        .first()
    )
    if held is not None:
        return held
    restricted_ok = user.has_perm("moderation.view_all_cases")
    with transaction.atomic():
        if connection.vendor == "postgresql":
            sql = _CLAIM_SQL.format(
                restricted_clause="" if restricted_ok else "AND restricted = false"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [user.pk, now, lease, now])
                row = cursor.fetchone()
            case_id = row[0] if row else None
        else:
            qs = Case.objects.filter(status=Case.Status.OPEN)
            if not restricted_ok:
                qs = qs.filter(restricted=False)
            case_id = (
                qs.order_by("priority", "sla_due_at", "id").values_list("pk", flat=True).first()
            )
            if case_id is not None and not Case.objects.filter(
                pk=case_id, status=Case.Status.OPEN
            ).update(
                status=Case.Status.IN_REVIEW,
                claimed_by=user,
                claimed_at=now,
                lease_expires_at=lease,
                updated_at=now,
            ):
                case_id = None
        if case_id is None:
            return None
        audit_record(
            actor=actor,
            verb="case.claimed",
            object_type="moderation.case",
            object_id=case_id,
            data={"lease_expires_at": lease.isoformat()},
        )
    return Case.objects.select_related("category").get(pk=case_id)


def case_renew_lease(*, case: Case, user: Any) -> Case:
    """Extend the holder's lease (the case page calls this while open). Not audited: the claim
    is; renewals are bookkeeping on the same hold."""
    now = timezone.now()
    lease = now + timedelta(seconds=_lease_seconds())
    updated = Case.objects.filter(pk=case.pk, status=Case.Status.IN_REVIEW, claimed_by=user).update(
        lease_expires_at=lease
    )
    if not updated:
        raise CaseNotHeld("You no longer hold this case; it went back to the queue.")
    case.lease_expires_at = lease
    return case


def case_release(*, case: Case, user: Any, reason: str = "") -> Case:
    """Give a case back to the queue. Its holder may; so may a lead (reassign/release)."""
    qs = Case.objects.filter(pk=case.pk, status=Case.Status.IN_REVIEW)
    if not user.has_perm("moderation.reassign_case"):
        qs = qs.filter(claimed_by=user)
    with transaction.atomic():
        previous = case.claimed_by_id
        if not qs.update(
            status=Case.Status.OPEN,
            claimed_by=None,
            claimed_at=None,
            lease_expires_at=None,
            updated_at=timezone.now(),
        ):
            raise CaseNotHeld("You don't hold this case.")
        audit_record(
            actor=user,
            verb="case.released",
            obj=case,
            data={"previous_holder": previous, "reason": reason[:500]},
        )
    case.refresh_from_db()
    return case


def case_reassign(*, case: Case, to_user: Any, actor: Any) -> Case:
    """A lead hands a case to a named moderator with a fresh lease."""
    now = timezone.now()
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if locked.status not in (Case.Status.OPEN, Case.Status.IN_REVIEW):
            raise CaseNotHeld("Only open or in-review cases can be reassigned.")
        previous = locked.claimed_by_id
        locked.status = Case.Status.IN_REVIEW
        locked.claimed_by = to_user
        locked.claimed_at = now
        locked.lease_expires_at = now + timedelta(seconds=_lease_seconds())
        locked.save(
            update_fields=["status", "claimed_by", "claimed_at", "lease_expires_at", "updated_at"]
        )
        audit_record(
            actor=actor,
            verb="case.reassigned",
            obj=locked,
            data={"from": previous, "to": to_user.pk},
        )
    return locked


def case_expire_leases(*, now: Any = None) -> int:
    """Return cases whose lease ran out to the queue (beat, every minute)."""
    now = now or timezone.now()
    expired = list(
        Case.objects.filter(status=Case.Status.IN_REVIEW, lease_expires_at__lt=now).values_list(
            "pk", "claimed_by_id"
        )[:1000]
    )
    count = 0
    for pk, holder in expired:
        with transaction.atomic():
            # Conditional: the holder may have renewed between our read and this write.
            if Case.objects.filter(
                pk=pk, status=Case.Status.IN_REVIEW, lease_expires_at__lt=now
            ).update(
                status=Case.Status.OPEN,
                claimed_by=None,
                claimed_at=None,
                lease_expires_at=None,
                updated_at=now,
            ):
                audit_record(
                    actor=WORKER,
                    verb="case.lease_expired",
                    object_type="moderation.case",
                    object_id=pk,
                    data={"previous_holder": holder},
                )
                count += 1
    return count
