"""The audit service: every state change writes an AuditEvent in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, models, transaction
from django.utils import timezone

from . import sqlrows
from .models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant works; it names the advisory lock that lets one sealer at a time extend the chain.
_AUDIT_CHAIN_LOCK_KEY = 0x5AFE_A0D1


@dataclass(frozen=True)
class SystemActor:
    """A non-human actor: a Celery worker, beat, a management command or a platform token."""

    label: str


WORKER = SystemActor("worker")

Actor = AbstractBaseUser | AnonymousUser | SystemActor | None


def audit_actor_fields(actor: Actor) -> tuple[int | None, str]:
    """(actor_id, actor_label) as an event stores them; also used by the SQL-side writer of
    case.claimed events (moderation_claim_next, moderation migration 0006)."""
    if actor is None:
        return None, "system"
    if isinstance(actor, SystemActor):
        return None, actor.label
    if isinstance(actor, AnonymousUser) or not actor.is_authenticated:
        return None, "anonymous"
    return actor.pk, actor.get_username()


def audit_record(
    *,
    actor: Actor,
    verb: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit log, inside the caller's transaction (it commits or rolls
    back with the state change it records).

    The event is written unchained; `audit_seal` links committed events into the hash chain
    shortly afterwards (beat, every few seconds). Chaining at write time needed one global
    lock held until every writer's commit, which serialised all audited work and, taken in the
    wrong order, deadlocked (benchmarks/QUEUE.md, LOAD.md).
    """
    if obj is not None:
        object_type = obj._meta.label_lower
        object_id = obj.pk
    actor_id, actor_label = audit_actor_fields(actor)
    event = AuditEvent(
        created_at=timezone.now(),
        actor_id=actor_id,
        actor_label=actor_label[:150],
        verb=verb,
        object_type=object_type,
        object_id=str(object_id),
        data=data or {},
    )
    # The INSERT without compiling it per call (core.sqlrows; no signal listens for events).
    sqlrows.insert(AuditEvent, [event])
    return event


def audit_record_many(
    *, actor: Actor, events: list[tuple[str, models.Model, dict[str, Any]]]
) -> list[AuditEvent]:
    """Append several events (verb, object, data) in one INSERT, inside the caller's
    transaction: what `audit_record` writes, for batch workflows. They are unchained like
    every event until `audit_seal` links them, in id order, which is the order given here."""
    actor_id, actor_label = audit_actor_fields(actor)
    now = timezone.now()
    rows = [
        AuditEvent(
            created_at=now,
            actor_id=actor_id,
            actor_label=actor_label[:150],
            verb=verb,
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            data=data,
        )
        for verb, obj, data in events
    ]
    return sqlrows.insert(AuditEvent, rows)


def audit_seal(*, batch_size: int = 5000) -> int:
    """Link committed, unsealed events into the hash chain; returns how many were sealed.

    1. Take the chain lock (PostgreSQL: transaction-scoped advisory lock; SQLite: writers are
       serialised by IMMEDIATE transactions), so only one sealer extends the chain at a time.
    2. Read the chain's head (highest seq) and the oldest unsealed events, in id order. Only
       committed events are visible, so an event whose transaction commits late is simply
       sealed in a later batch: the chain order is the sealing order (seq), not the id order.
    3. Give each its seq, the previous hash, and its own hash.
    The lock is held only for this short transaction, never by the workflows themselves.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK_KEY])
        head = (
            AuditEvent.objects.filter(seq__isnull=False)
            .order_by("-seq")
            .values_list("seq", "hash")
            .first()
        )
        seq, prev = head if head else (0, GENESIS_HASH)
        pending = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:batch_size])
        for event in pending:
            seq += 1
            event.seq = seq
            event.prev_hash = prev
            event.hash = event.compute_hash()
            prev = event.hash
        AuditEvent.objects.bulk_update(pending, ["seq", "prev_hash", "hash"], batch_size=1000)
    return len(pending)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str = ""


def audit_verify_chain(
    *,
    batch_size: int = 5000,
    unsealed_grace: timedelta = timedelta(minutes=5),
    start_seq: int = 0,
    start_hash: str | None = None,
) -> ChainReport:
    """Walk the chain in seq order; report the first event whose link or content does not
    match. Events still unsealed after the grace period are reported too (a stopped sealer,
    or rows inserted behind the application's back).

    From a trusted point (a signed checkpoint's seq and hash, core.checkpoints) the walk
    starts there: the event at `start_seq` must still carry `start_hash`."""
    prev = GENESIS_HASH
    if start_seq:
        anchor = AuditEvent.objects.filter(seq=start_seq).values_list("pk", "hash").first()
        if anchor is None or anchor[1] != start_hash:
            return ChainReport(
                False,
                0,
                anchor[0] if anchor else None,
                f"the checkpointed event {start_seq} is missing or changed",
            )
        prev = anchor[1]
    checked = 0
    last_seq = start_seq
    expected_seq = start_seq + 1
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq")[:batch_size])
        if not batch:
            break
        for event in batch:
            if event.seq != expected_seq or event.prev_hash != prev:
                return ChainReport(
                    False,
                    checked,
                    event.pk,
                    "previous-hash link does not match the preceding event "
                    "(an event was deleted, inserted or reordered)",
                )
            if event.compute_hash() != event.hash:
                return ChainReport(
                    False,
                    checked,
                    event.pk,
                    "content does not match its hash (the event was edited)",
                )
            prev = event.hash
            checked += 1
            last_seq = event.seq
            expected_seq += 1
    stale = (
        AuditEvent.objects.filter(seq__isnull=True, created_at__lt=timezone.now() - unsealed_grace)
        .order_by("id")
        .first()
    )
    if stale is not None:
        return ChainReport(
            False,
            checked,
            stale.pk,
            "event was never sealed into the chain (is the sealer running?)",
        )
    return ChainReport(ok=True, checked=checked)
