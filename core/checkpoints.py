"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain (core.audit) shows an edited, deleted or reordered event — but only relative to
the events that remain. Someone who can delete the *last* events, or insert new ones that the
sealer then chains, leaves a chain that still verifies. A checkpoint fixes the head at a moment:
`{seq, hash, at}` signed with the installation's Ed25519 key (core.signing) and written once to
a store the application cannot rewrite (a write-once directory here; object storage with
retention in production, behind the same small interface). Against the checkpoints:

- a truncated tail is a checkpoint whose `seq` no longer exists (or whose hash changed);
- a forged insert that claims a past time is an event chained *after* a checkpoint but dated
  before it (beyond the grace a slow transaction can explain);
- `verify_audit --since` starts from a trusted checkpoint instead of the first event.

Threat model: docs/THREAT_MODEL.md. Imports models, core.audit and core.signing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

from . import signing
from .audit import ChainReport, audit_seal, audit_verify_chain
from .models import AuditEvent

CHECKPOINT_VERSION = 1


class CheckpointStore(Protocol):
    """Where checkpoints live. `put` must refuse to overwrite (write-once)."""

    def put(self, name: str, data: bytes) -> None: ...

    def names(self) -> list[str]: ...

    def get(self, name: str) -> bytes: ...


class FileCheckpointStore:
    """A directory of read-only files created with O_EXCL: an existing checkpoint is never
    replaced. Point it at a mount the application user cannot modify afterwards (append-only
    or WORM storage, or a directory synchronised to object storage with retention)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.root / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob("audit-checkpoint-*.json"))

    def get(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


def default_store() -> CheckpointStore:
    return FileCheckpointStore(Path(settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR))


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    key_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at.isoformat(),
            "key_sha256": self.key_sha256,
        }


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_write(*, store: CheckpointStore | None = None) -> Checkpoint | None:
    """Seal what is committed, then sign and store the head. None when the head is already
    checkpointed (nothing new since the last one) or the chain is empty."""
    store = store or default_store()
    while audit_seal():
        pass
    head = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").first()
    if head is None or head.seq is None:
        return None
    name = f"audit-checkpoint-{head.seq:012d}.json"
    if name in store.names():
        return None
    checkpoint = Checkpoint(
        seq=head.seq, hash=head.hash, at=timezone.now(), key_sha256=signing.fingerprint()
    )
    payload = checkpoint.as_dict()
    document = {"checkpoint": payload, "signature": signing.sign(_canonical(payload)).hex()}
    try:
        store.put(name, json.dumps(document, sort_keys=True, indent=2).encode() + b"\n")
    except FileExistsError:
        # Another process (beat's checkpoint task, a packet build on another worker) signed
        # this same head between our look and our write: its checkpoint stands, written once.
        return None
    return checkpoint


class CheckpointError(Exception):
    """A stored checkpoint that is unreadable or whose signature does not verify."""


def checkpoint_parse(data: bytes, *, public_key: Any = None) -> Checkpoint:
    public_key = public_key or signing.private_key().public_key()
    try:
        document = json.loads(data)
        payload = document["checkpoint"]
        signature = bytes.fromhex(document["signature"])
        checkpoint = Checkpoint(
            seq=int(payload["seq"]),
            hash=str(payload["hash"]),
            at=datetime.fromisoformat(payload["at"]),
            key_sha256=str(payload["key_sha256"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"unreadable checkpoint ({type(exc).__name__})") from None
    if not signing.verify(public_key, signature, _canonical(payload)):
        raise CheckpointError("the checkpoint's signature does not verify")
    return checkpoint


def checkpoints_load(*, store: CheckpointStore | None = None) -> list[Checkpoint]:
    """Every stored checkpoint, verified, in seq order. Raises CheckpointError naming the file."""
    store = store or default_store()
    loaded = []
    for name in store.names():
        try:
            loaded.append(checkpoint_parse(store.get(name)))
        except CheckpointError as exc:
            raise CheckpointError(f"{name}: {exc}") from None
    return sorted(loaded, key=lambda c: c.seq)


def checkpoint_latest(*, store: CheckpointStore | None = None) -> dict[str, Any] | None:
    """The newest checkpoint as stored (payload and signature), for a packet's custody file."""
    store = store or default_store()
    names = store.names()
    return json.loads(store.get(names[-1])) if names else None


def checkpoint_covering(seq: int, *, store: CheckpointStore | None = None) -> dict[str, Any]:
    """The earliest stored checkpoint at or after `seq` (as stored: payload and signature),
    writing one first if none covers it yet. A referral packet's custody file carries it, so a
    recipient can later ask for the chain to be shown against a head the packet fixed."""
    store = store or default_store()
    for name in store.names():  # sorted by seq (zero-padded)
        if int(name.removeprefix("audit-checkpoint-").removesuffix(".json")) >= seq:
            return json.loads(store.get(name))
    checkpoint_write(store=store)
    for name in store.names():
        if int(name.removeprefix("audit-checkpoint-").removesuffix(".json")) >= seq:
            return json.loads(store.get(name))
    raise CheckpointError(f"no checkpoint covers audit event {seq}")


def audit_verify_against_checkpoints(
    *,
    store: CheckpointStore | None = None,
    since: int | None = None,
    backdate_grace: timedelta | None = None,
) -> ChainReport:
    """The chain (from the checkpoint at seq `since`, when given), then every checkpoint:
    its event must still exist with the same hash, and no event chained after a checkpoint
    may be dated before it by more than the grace (a slow transaction's lag)."""
    grace = backdate_grace or timedelta(seconds=settings.SAFEGUARD_AUDIT_BACKDATE_GRACE_SECONDS)
    try:
        checkpoints = checkpoints_load(store=store)
    except CheckpointError as exc:
        return ChainReport(False, 0, None, f"checkpoint store: {exc}")
    start = None
    if since is not None:
        start = next((c for c in checkpoints if c.seq == since), None)
        if start is None:
            return ChainReport(False, 0, None, f"no checkpoint at seq {since}")
    report = audit_verify_chain(
        start_seq=start.seq if start else 0, start_hash=start.hash if start else None
    )
    if not report.ok:
        return report
    hashes = dict(
        AuditEvent.objects.filter(seq__in=[c.seq for c in checkpoints]).values_list("seq", "hash")
    )
    for checkpoint in checkpoints:
        if since is not None and checkpoint.seq < since:
            continue
        found = hashes.get(checkpoint.seq)
        if found is None:
            return ChainReport(
                False,
                report.checked,
                None,
                f"event {checkpoint.seq}, checkpointed at {checkpoint.at:%Y-%m-%d %H:%M:%S}, "
                "is gone: the tail of the audit log was deleted",
            )
        if found != checkpoint.hash:
            return ChainReport(
                False,
                report.checked,
                None,
                f"event {checkpoint.seq} no longer has the hash its checkpoint recorded: the "
                "chain was rewritten",
            )
        backdated = (
            AuditEvent.objects.filter(seq__gt=checkpoint.seq, created_at__lt=checkpoint.at - grace)
            .order_by("seq")
            .first()
        )
        if backdated is not None:
            return ChainReport(
                False,
                report.checked,
                backdated.pk,
                f"event {backdated.seq} was chained after the checkpoint of "
                f"{checkpoint.at:%Y-%m-%d %H:%M:%S} but claims "
                f"{backdated.created_at:%Y-%m-%d %H:%M:%S}: an insert behind the "
                "application's back",
            )
    return report
