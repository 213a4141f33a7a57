"""The review queue: claim the next case with a lease, renew, release, reassign, expire; vacuum."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from core.audit import WORKER, Actor, audit_actor_fields, audit_record
from core.errors import Conflict, DomainError
from moderation.models import Case, QueueEntry
from moderation.selectors import cases_held_by

# PostgreSQL: the claim is the server-side function moderation_claim_next (migration 0006):
# held-case check, FOR UPDATE SKIP LOCKED on the head of the claim queue, a HOT update of the
# case row with a lease, and the audit event, in one call and one transaction, with plans the
# server prepares once per connection; a claim that is its own transaction commits without
# waiting for the WAL flush (a lease is soft state: see the migration for why that is safe).
_CLAIM_SQL = "SELECT * FROM moderation_claim_next(%s, %s, %s, %s, %s, %s, %s::jsonb, %s)"


class CaseNotHeld(Conflict):
    """The caller does not hold the case (never claimed, released, or the lease expired)."""


class ReassignRefused(DomainError):
    """The case cannot go to that person."""


def _lease_seconds() -> int:
    return settings.SAFEGUARD_LEASE_SECONDS


def claim_statement(*, user: Any, actor: Actor | None = None) -> tuple[str, list[Any]]:
    """The PostgreSQL claim call and its parameters for `user` (see _CLAIM_SQL)."""
    actor = actor if actor is not None else user
    now = timezone.now()
    lease = now + timedelta(seconds=_lease_seconds())
    actor_id, actor_label = audit_actor_fields(actor)
    data = json.dumps({"lease_expires_at": lease.isoformat()})
    restricted_ok = user.has_perm("moderation.view_all_cases")
    # Asynchronous commit only when the claim is its own transaction: inside a caller's
    # transaction it would also apply to that caller's other writes (see migration 0006).
    async_commit = not connection.in_atomic_block
    return _CLAIM_SQL, [
        user.pk,
        restricted_ok,
        now,
        lease,
        actor_id,
        actor_label[:150],
        data,
        async_commit,
    ]


def case_claim_next(*, user: Any, actor: Actor | None = None) -> Case | None:
    """Claim the top open case for `user`, or return the case they already hold.

    PostgreSQL: one call of moderation_claim_next (see _CLAIM_SQL and migration 0006), one
    round trip: the held-case check, the claim with FOR UPDATE SKIP LOCKED, the lease and the
    audit event.
    SQLite (embedded default): writers are serialised by IMMEDIATE transactions, so a read
    followed by a conditional UPDATE (status still open) is correct there.
    Moderators without view_all_cases never claim restricted cases (leads assign those).
    """
    if connection.vendor == "postgresql":
        sql, params = claim_statement(user=user, actor=actor)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
            if row is None:
                return None
            columns = [col[0] for col in cursor.description]
        return _case_from_row(columns, row)
    return _claim_next_portable(user=user, actor=actor)


@cache
def _case_loader() -> tuple[list[str], list[tuple[str, list[Any]]]]:
    fields = Case._meta.concrete_fields
    converters = [(f.column, f.get_db_converters(connection)) for f in fields]
    return [f.attname for f in fields], converters


def _case_from_row(columns: list[str], row: tuple[Any, ...]) -> Case:
    """A Case from a `SELECT *` row, as the ORM would build it. Claims are the hottest path:
    Case.objects.raw() resolved columns and converters on every call, which cost as much
    client CPU as the rest of the claim (benchmarks/QUEUE.md)."""
    attnames, converters = _case_loader()
    by_column = dict(zip(columns, row, strict=True))
    values = []
    for column, convs in converters:
        value = by_column[column]
        for convert in convs:
            value = convert(value, None, connection)
        values.append(value)
    return Case.from_db(connection.alias, attnames, values)


def _claim_next_portable(*, user: Any, actor: Actor | None) -> Case | None:
    actor = actor if actor is not None else user
    now = timezone.now()
    lease = now + timedelta(seconds=_lease_seconds())
    held = cases_held_by(user).filter(lease_expires_at__gt=now).order_by("claimed_at").first()
    if held is not None:
        return held
    restricted_ok = user.has_perm("moderation.view_all_cases")
    with transaction.atomic():
        qs = Case.objects.filter(status=Case.Status.OPEN)
        if not restricted_ok:
            qs = qs.filter(restricted=False)
        case_id = qs.order_by("priority", "sla_due_at", "id").values_list("pk", flat=True).first()
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
    """A lead hands a case to a named moderator with a fresh lease. A restricted case opens
    only for leads and the people it is assigned to: the assignee is granted it."""
    if not to_user.has_perm("moderation.claim_case"):
        raise ReassignRefused(f"{to_user.get_username()} cannot work cases.")
    now = timezone.now()
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if locked.status not in (Case.Status.OPEN, Case.Status.IN_REVIEW):
            raise CaseNotHeld("Only open or in-review cases can be reassigned.")
        if locked.restricted:
            assign_perm("moderation.work_restricted_case", to_user, locked)
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
    if connection.vendor == "postgresql":
        # The holder index of the claim queue holds only held cases: no scan of the case table.
        expired = list(
            QueueEntry.objects.filter(holder__isnull=False, lease_expires_at__lt=now)
            .order_by("lease_expires_at")
            .values_list("case_id", "holder_id")[:1000]
        )
    else:
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


# The vacuum's pace: it sleeps QUEUE_VACUUM_COST_DELAY_MS each time it has handled
# QUEUE_VACUUM_COST_LIMIT pages. Spread thin on purpose: the work per run is fixed (every index
# is read in full), and what claims feel is how much of the cores it takes while it runs.
QUEUE_VACUUM_COST_DELAY_MS = 5.0
QUEUE_VACUUM_COST_LIMIT = 100


def queue_vacuum(
    *,
    cost_delay_ms: float = QUEUE_VACUUM_COST_DELAY_MS,
    cost_limit: int = QUEUE_VACUUM_COST_LIMIT,
) -> bool:
    """VACUUM the claim queue (beat, every 10 s; PostgreSQL only).

    Every claim leaves a dead entry at the head of the claim index, and every claim scans from
    the head: without this, claim throughput halves within a minute (benchmarks/QUEUE.md).
    Autovacuum, whose naptime is server-wide, is only the backstop.

    A run's work does not shrink with fewer dead entries: it reads every index of the table in
    full (about 0.6 s of one core at 1.4 M open cases). Run flat out, or in parallel (a worker
    per index, the default for a manual VACUUM), it takes nearly half of a 2-core server for
    that time, and an open loop of claims at 75 % of capacity queues behind it: that was the tail
    of benchmarks/QUEUE.md's open-loop runs. So it runs in one process (PARALLEL 0), paced at
    100 pages then 5 ms asleep: about 4 s at 1.4 M open cases, and the claims it overlaps keep
    their tail (per-second p99 7.5 ms in its seconds, 6 ms in the others; 27 ms against 4.6 ms
    as it ran before). A run still going when beat fires again is skipped (SKIP_LOCKED). Must
    run outside a transaction. Returns whether it ran.
    """
    if connection.vendor != "postgresql":
        return False
    paced = {
        "vacuum_cost_delay": f"{cost_delay_ms}ms",
        "vacuum_cost_limit": str(int(cost_limit)),
        # every page counts one unit, whether found in shared buffers, read in or dirtied:
        # the stock weights (1, 2, 20) would make the same throttle take 4 s on a server that
        # holds the queue in memory and 19 s on one that does not (stock shared_buffers), and a
        # vacuum that slow lets dead entries pile up at the head of the claim index
        "vacuum_cost_page_hit": "1",
        "vacuum_cost_page_miss": "1",
        "vacuum_cost_page_dirty": "1",
    }
    with connection.cursor() as cursor:
        for name, value in paced.items():
            cursor.execute("SELECT set_config(%s, %s, false)", [name, value])
        try:
            cursor.execute("VACUUM (SKIP_LOCKED, PARALLEL 0) moderation_queueentry")
        finally:
            for name in paced:
                cursor.execute(f"RESET {name}")
    return True
