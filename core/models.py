"""Cross-cutting records every app writes: the audit log and API tokens."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class AuditEvent(models.Model):
    """One append-only, hash-chained record of a state change (shaped like admin's LogEntry).

    `hash` = SHA-256 over the previous event's hash and this event's canonical content, so any
    edit, deletion or reordering breaks the chain from that point on (`manage.py verify_audit`).
    Events are written unchained and sealed (seq, prev_hash, hash) moments later by the sealer.
    On PostgreSQL a trigger forbids DELETE and every UPDATE except that one-time sealing.
    """

    created_at = models.DateTimeField(db_index=True)
    # PROTECT: an actor with audit history cannot be deleted (deactivate the account instead);
    # deleting would null the FK, i.e. rewrite history.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150)
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    # Set by the sealer (core.audit.audit_seal), which links committed events into the chain.
    seq = models.BigIntegerField(null=True, blank=True)
    # NULL means "not sealed yet".
    prev_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["id"]
        # Every audited write inserts one row into each of these indexes, so there are few:
        # no text-pattern (_like) twins, and the chain's unique seq index is partial, so an
        # unsealed event skips it until the sealer gives it a seq (benchmarks/QUEUE.md).
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["verb"], name="audit_verb_idx"),
            # The sealer's work list: only unsealed events, so it stays small.
            models.Index(fields=["id"], condition=Q(seq__isnull=True), name="audit_unsealed_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["seq"], condition=Q(seq__isnull=False), name="audit_seq_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.actor_label} {self.verb} {self.object_type}:{self.object_id}"

    def canonical(self) -> bytes:
        body: dict[str, Any] = {
            "created_at": self.created_at.isoformat(),
            "actor_id": self.actor_id,
            "actor_label": self.actor_label,
            "verb": self.verb,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "data": self.data,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.prev_hash.encode() + b"|" + self.canonical()).hexdigest()


class ApiToken(models.Model):
    """An API credential. Only the SHA-256 of the key is stored; the key is shown once."""

    class Scope(models.TextChoices):
        PLATFORM = "platform", "Platform intake (submits items and reports)"
        CONSOLE = "console", "Console user (acts with the user's permissions)"

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(
        max_length=12, help_text="First characters of the key, to recognise it"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    scope = models.CharField(max_length=16, choices=Scope.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Optional: from this moment the key is refused like a revoked one (401).
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class EvidenceKey(models.Model):
    """The data key of one encrypted evidence file (core.evidence_crypto), wrapped by a master
    key. The file's header names this row; the key itself never touches the evidence store, so
    shredding the row (retention purge) leaves every copy of the file made since unreadable.
    A database backup taken *before* the purge still holds the wrapped key: with the master
    key, it can decrypt that copy until the backup expires or the master key is retired
    (docs/THREAT_MODEL.md, README "Backups and restore")."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The evidence file's storage name (for operators and the purge); the header is what binds.
    name = models.CharField(max_length=200, blank=True, db_index=True)
    # Which master key wrapped it (SAFEGUARD_EVIDENCE_MASTER_KEYS): rotation re-wraps rows
    # whose id is not the current one.
    master_key_id = models.CharField(max_length=64, db_index=True)
    # 12-byte nonce + AES-256-GCM(master, data key) + tag; empty once shredded.
    wrapped = models.BinaryField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    rewrapped_at = models.DateTimeField(null=True, blank=True)
    shredded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        state = "shredded" if self.shredded_at else f"wrapped by {self.master_key_id}"
        return f"Evidence key {self.pk} ({state})"


class EnrolmentLink(models.Model):
    """Permission, issued by an admin (or by accepting an invitation), for a lead or admin to
    enrol a second factor: a password alone must not be enough to bind an authenticator to an
    account that can see every case. One-time and expiring; only the token's SHA-256 is kept.
    Redeemed by the person, logged in, in one session — which then may enrol, once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrolment_links"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Enrolment link for {self.user_id} (until {self.expires_at:%Y-%m-%d %H:%M})"
