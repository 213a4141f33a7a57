"""The audit service: every state change writes an AuditEvent in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, models, transaction
from django.utils import timezone

from .models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant works; it names the one advisory lock that serialises audit-chain appends.
_AUDIT_CHAIN_LOCK_KEY = 0x5AFE_A0D1


@dataclass(frozen=True)
class SystemActor:
    """A non-human actor: a Celery worker, beat, a management command or a platform token."""

    label: str


WORKER = SystemActor("worker")
SYSTEM = SystemActor("system")

Actor = AbstractBaseUser | AnonymousUser | SystemActor | None


def _actor_fields(actor: Actor) -> tuple[int | None, str]:
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
    """Append one event to the hash-chained audit log, inside the caller's transaction.

    1. Take the chain lock (PostgreSQL: a transaction-scoped advisory lock; SQLite: writers are
       already serialised by the IMMEDIATE transaction mode), so two transactions can never
       chain onto the same previous event.
    2. Read the newest event's hash and chain this event onto it.
    The lock is held until the caller's transaction commits, so callers should record audit
    events last in their transaction to keep the hold short.
    """
    if obj is not None:
        object_type = obj._meta.label_lower
        object_id = obj.pk
    actor_id, actor_label = _actor_fields(actor)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK_KEY])
        prev = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            created_at=timezone.now(),
            actor_id=actor_id,
            actor_label=actor_label[:150],
            verb=verb,
            object_type=object_type,
            object_id=str(object_id),
            data=data or {},
            prev_hash=prev or GENESIS_HASH,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str = ""


def audit_verify_chain(*, batch_size: int = 5000) -> ChainReport:
    """Walk the chain in id order; report the first event whose link or content does not match."""
    prev = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return ChainReport(ok=True, checked=checked)
        for event in batch:
            if event.prev_hash != prev:
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
            last_id = event.pk
