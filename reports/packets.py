"""Referral packet workflows: draft → awaiting approval → (second lead) building → ready →
exported → acknowledged, or failed (retryable). Every step audited; four eyes enforced.

Imports models, `reports.builder` (the zip), moderation's models and retention service, and core.
Builds are enqueued by task name through `core.enqueue`, never by importing `reports.tasks`.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from guardian.shortcuts import assign_perm

from core.audit import WORKER, Actor, audit_record
from core.enqueue import enqueue_on_commit
from core.errors import Conflict, DomainError
from moderation.models import Case, Escalation, Item
from moderation.services.retention import legal_hold_place

from .builder import MediaInPacket, build_packet_zip
from .models import Destination, ReferralPacket

_OBJECT_PERMS = ("view_referralpacket", "approve_referralpacket", "download_referralpacket")


class PacketError(DomainError):
    """A refused packet action; the packet's state is unchanged."""


class PacketConflict(PacketError, Conflict):
    """A refusal because of the packet's state or the lead's rights on it (the API's 409)."""


def _grant_leads(packet: ReferralPacket) -> None:
    """Object permissions go to groups: safety leads and admins may act on the packet."""
    for group in Group.objects.filter(name__in=["Safety lead", "Admin"]):
        for perm in _OBJECT_PERMS:
            assign_perm(f"reports.{perm}", group, packet)


def packet_draft(
    *,
    cases: list[Case],
    destination: Destination,
    priority: str,
    summary: str,
    actor: Actor,
    drafted_by: Any = None,
    escalation: Escalation | None = None,
    reason: str = "",
) -> ReferralPacket:
    """Draft a packet for cases (by a lead, a rule or the 999 follow-up). Places legal holds."""
    if not cases:
        raise PacketError("A referral needs at least one case.")
    if not Item.objects.filter(case__in=cases).exists():
        raise PacketError("The case has no items to refer.")
    if not destination.enabled:
        raise PacketError(f"The destination {destination.name!r} is disabled.")
    if destination.kind == Destination.Kind.NCMEC and not settings.SAFEGUARD_NCMEC_ENABLED:
        raise PacketError("The NCMEC adapter is not enabled on this installation.")
    if priority not in ReferralPacket.Priority.values:
        raise PacketError(f"Unknown priority {priority!r}.")
    if not summary.strip():
        raise PacketError("Write an incident summary for the recipient.")
    with transaction.atomic():
        packet = ReferralPacket.objects.create(
            destination=destination,
            priority=priority,
            summary=summary[:20000],
            drafted_by=drafted_by,
            escalation=escalation,
            drafted_reason=reason[:300],
        )
        packet.cases.set(cases)
        _grant_leads(packet)
        for case in cases:
            legal_hold_place(
                case=case, actor=actor, reason=f"referral {packet.reference} to {destination.name}"
            )
        audit_record(
            actor=actor,
            verb="packet.drafted",
            obj=packet,
            data={
                "cases": [c.pk for c in cases],
                "destination": destination.name,
                "priority": priority,
                "reason": reason[:300],
            },
        )
    return packet


def packet_submit(*, packet: ReferralPacket, lead: Any) -> ReferralPacket:
    """Send a draft for approval. For rule- or system-drafted packets the submitting lead
    becomes the drafter, so a *second* lead must approve."""
    with transaction.atomic():
        locked = ReferralPacket.objects.select_for_update().get(pk=packet.pk)
        if locked.status != ReferralPacket.Status.DRAFT:
            raise PacketError(f"Only drafts can be submitted (this one is {locked.status}).")
        if locked.drafted_by_id is None:
            locked.drafted_by = lead
        locked.status = ReferralPacket.Status.AWAITING_APPROVAL
        locked.save(update_fields=["status", "drafted_by", "updated_at"])
        audit_record(actor=lead, verb="packet.submitted", obj=locked, data={})
    return locked


def packet_approve(*, packet: ReferralPacket, lead: Any) -> ReferralPacket:
    """Four eyes: a second lead, never the drafter, approves; the build is queued after commit."""
    if not lead.has_perm("reports.approve_referralpacket", packet):
        raise PacketConflict("You may not approve this packet.")
    with transaction.atomic():
        locked = (
            ReferralPacket.objects.select_for_update()
            .select_related("destination")
            .get(pk=packet.pk)
        )
        if locked.status != ReferralPacket.Status.AWAITING_APPROVAL:
            raise PacketConflict(
                f"Only packets awaiting approval can be approved (this one is "
                f"{locked.get_status_display().lower()})."
            )
        if locked.drafted_by_id == lead.pk:
            raise PacketConflict("You drafted this packet: a second safety lead must approve it.")
        if not locked.destination.enabled:
            raise PacketConflict(f"The destination {locked.destination.name!r} is disabled.")
        locked.status = ReferralPacket.Status.BUILDING
        locked.approved_by = lead
        locked.approved_at = timezone.now()
        locked.progress = 0
        locked.save(
            update_fields=["status", "approved_by", "approved_at", "progress", "updated_at"]
        )
        audit_record(
            actor=lead,
            verb="packet.approved",
            obj=locked,
            data={"drafted_by": locked.drafted_by_id},
        )
        enqueue_on_commit("reports.build_packet", locked.pk)
    return locked


def _progress(packet_id: int, value: int) -> None:
    ReferralPacket.objects.filter(pk=packet_id).update(progress=value)


def packet_build(*, packet_id: int, actor: Actor = WORKER) -> ReferralPacket | None:
    """Build the signed zip. Idempotent: a ready packet is left alone; a killed build is retried.

    1. Claim the attempt (status still building), counting attempts.
    2. Build the files in memory (text only), write the zip to a temporary file in private
       storage, then rename it into place: readers see a whole packet or none.
    3. Mark it ready with the zip's and the manifest's SHA-256.
    """
    if not ReferralPacket.objects.filter(
        pk=packet_id, status=ReferralPacket.Status.BUILDING
    ).update(build_attempts=F("build_attempts") + 1, build_started_at=timezone.now(), progress=10):
        return ReferralPacket.objects.filter(pk=packet_id).first()
    packet = ReferralPacket.objects.select_related("destination", "escalation").get(pk=packet_id)
    try:
        _progress(packet_id, 30)
        data, manifest_sha = build_packet_zip(packet)
        _progress(packet_id, 80)
        relative = f"packets/{packet.reference}.zip"
        final = Path(settings.EVIDENCE_ROOT) / relative
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = final.with_suffix(f".zip.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, final)
    except (MediaInPacket, ValueError, OSError) as exc:
        with transaction.atomic():
            ReferralPacket.objects.filter(pk=packet_id).update(
                status=ReferralPacket.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]
            )
            audit_record(
                actor=actor, verb="packet.failed", obj=packet, data={"error": str(exc)[:500]}
            )
        return ReferralPacket.objects.get(pk=packet_id)
    with transaction.atomic():
        ReferralPacket.objects.filter(pk=packet_id, status=ReferralPacket.Status.BUILDING).update(
            status=ReferralPacket.Status.READY,
            file=relative,
            progress=100,
            error="",
            sha256=hashlib.sha256(data).hexdigest(),
            manifest_sha256=manifest_sha,
        )
        audit_record(
            actor=actor,
            verb="packet.built",
            obj=packet,
            data={
                "sha256": hashlib.sha256(data).hexdigest(),
                "manifest_sha256": manifest_sha,
                "bytes": len(data),
            },
        )
    return ReferralPacket.objects.get(pk=packet_id)


def packet_retry(*, packet: ReferralPacket, lead: Any) -> ReferralPacket:
    with transaction.atomic():
        if not ReferralPacket.objects.filter(
            pk=packet.pk, status=ReferralPacket.Status.FAILED
        ).update(status=ReferralPacket.Status.BUILDING, progress=0, error=""):
            raise PacketError("Only failed packets can be retried.")
        audit_record(actor=lead, verb="packet.retried", obj=packet, data={})
        enqueue_on_commit("reports.build_packet", packet.pk)
    packet.refresh_from_db()
    return packet


def packet_sweep_stuck(*, now: datetime | None = None) -> list[int]:
    """Builds whose worker died: still building past the timeout → enqueue again."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SAFEGUARD_PACKET_STUCK_AFTER_SECONDS)
    stuck = list(
        ReferralPacket.objects.filter(
            status=ReferralPacket.Status.BUILDING, build_started_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    never = list(
        ReferralPacket.objects.filter(
            status=ReferralPacket.Status.BUILDING,
            build_started_at__isnull=True,
            approved_at__lt=cutoff,
        ).values_list("pk", flat=True)
    )
    return stuck + never


def packet_open_for_download(*, packet: ReferralPacket, lead: Any) -> Path:
    """Check permission and state, verify the stored zip, log the download, mark exported."""
    if not lead.has_perm("reports.download_referralpacket", packet):
        raise PacketConflict("You may not download this packet.")
    if packet.status not in (
        ReferralPacket.Status.READY,
        ReferralPacket.Status.EXPORTED,
        ReferralPacket.Status.ACKNOWLEDGED,
    ):
        raise PacketConflict(
            f"The packet is not ready (it is {packet.get_status_display().lower()})."
        )
    path = Path(settings.EVIDENCE_ROOT) / packet.file.name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != packet.sha256:
        with transaction.atomic():
            audit_record(
                actor=lead,
                verb="packet.integrity_failed",
                obj=packet,
                data={"expected": packet.sha256, "found": digest},
            )
        raise PacketConflict(
            "The stored packet does not match its recorded hash; the incident "
            "was logged. Rebuild it."
        )
    now = timezone.now()
    with transaction.atomic():
        first = ReferralPacket.objects.filter(
            pk=packet.pk, status=ReferralPacket.Status.READY
        ).update(status=ReferralPacket.Status.EXPORTED, exported_at=now)
        audit_record(
            actor=lead,
            verb="packet.downloaded",
            obj=packet,
            data={"sha256": packet.sha256, "first_export": bool(first)},
        )
        if first and packet.escalation_id:
            Escalation.objects.filter(pk=packet.escalation_id, referred_at__isnull=True).update(
                referred_at=now
            )
    return path


def packet_acknowledge(*, packet: ReferralPacket, lead: Any, reference: str) -> ReferralPacket:
    reference = reference.strip()
    if not reference:
        raise PacketError("Record the recipient's reference.")
    with transaction.atomic():
        if not ReferralPacket.objects.filter(
            pk=packet.pk, status=ReferralPacket.Status.EXPORTED
        ).update(
            status=ReferralPacket.Status.ACKNOWLEDGED,
            external_reference=reference[:200],
            acknowledged_at=timezone.now(),
        ):
            raise PacketError("Only exported packets can be acknowledged.")
        audit_record(
            actor=lead,
            verb="packet.acknowledged",
            obj=packet,
            data={"external_reference": reference[:200]},
        )
    packet.refresh_from_db()
    return packet
