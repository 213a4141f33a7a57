"""Referral packet workflows: draft → awaiting approval → (second lead) building → ready →
exported → submitted to the recipient → acknowledged (the recipient's reference), or failed
(retryable). Every step audited; four eyes enforced; detection → report and submission →
acknowledgement deadlines checked by `packet_sla_check` (beat).

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
from django.db.models import F, Min, Q
from django.utils import timezone
from guardian.shortcuts import assign_perm

from core.audit import WORKER, Actor, audit_record
from core.enqueue import enqueue_on_commit
from core.errors import Conflict, DomainError
from moderation.models import Case, Escalation, Item
from moderation.services.retention import legal_hold_place

from .builder import MediaInPacket, authorised_person, build_packet_zip
from .models import Destination, ReferralPacket
from .storage import packet_path, stored_packet_bytes

_OBJECT_PERMS = ("view_referralpacket", "approve_referralpacket", "download_referralpacket")
SENT = (ReferralPacket.Status.SUBMITTED, ReferralPacket.Status.ACKNOWLEDGED)
CHANNELS = ("portal", "email", "phone", "api", "other")


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
    identity_documents: str = "",
    identity_documents_detail: str = "",
) -> ReferralPacket:
    """Draft a packet for cases (by a lead, a rule or the 999 follow-up). Places legal holds.

    The report is due a number of hours (by priority) after the first item arrived: the
    guidance asks for every CSEA report to reach the police as soon as possible."""
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
    if (
        destination.kind == Destination.Kind.IWF
        and not Item.objects.filter(case__in=cases).exclude(url="").exists()
    ):
        raise PacketError(
            "The IWF takes reports of URLs and none of these items has one: refer them to "
            "the police or the NCA.",
            field="destination",
        )
    if not summary.strip():
        raise PacketError("Write an incident summary for the recipient.")
    _check_identity_documents(identity_documents, identity_documents_detail)
    detected_at = Item.objects.filter(case__in=cases).aggregate(first=Min("created_at"))["first"]
    with transaction.atomic():
        packet = ReferralPacket.objects.create(
            destination=destination,
            priority=priority,
            summary=summary[:20000],
            drafted_by=drafted_by,
            escalation=escalation,
            drafted_reason=reason[:300],
            identity_documents=identity_documents,
            identity_documents_detail=identity_documents_detail.strip()[:1000],
            detected_at=detected_at,
            report_due_at=detected_at + report_window(priority) if detected_at else None,
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
                "identity_documents": identity_documents,
            },
        )
    return packet


def report_window(priority: str) -> timedelta:
    """How long after detection a report of this priority is due."""
    hours = {
        ReferralPacket.Priority.IMMEDIATE: settings.SAFEGUARD_REPORT_DUE_HOURS_IMMEDIATE,
        ReferralPacket.Priority.URGENT: settings.SAFEGUARD_REPORT_DUE_HOURS_URGENT,
    }.get(priority, settings.SAFEGUARD_REPORT_DUE_HOURS_ROUTINE)
    return timedelta(hours=hours)


def _check_identity_documents(value: str, detail: str) -> None:
    if value and value not in ReferralPacket.IdentityDocuments.values:
        raise PacketError(
            f"Unknown answer {value!r}: held, not_held or unknown.", field="identity_documents"
        )
    if value == ReferralPacket.IdentityDocuments.HELD and not detail.strip():
        raise PacketError(
            "Say which identity documents are held (type and where they are kept).",
            field="identity_documents_detail",
        )


def packet_summary_edit(*, packet: ReferralPacket, lead: Any, summary: str) -> ReferralPacket:
    """A lead completes or corrects a draft's incident summary before submitting it (a rule or
    the 999 follow-up drafts a placeholder). Refused once the packet is submitted: the summary
    then is what the approver approves.

    The lead who writes the summary becomes the packet's drafter, so the four-eyes check
    (`packet_approve`) keeps them from approving their own words. The audit event records
    the lengths and SHA-256 of the text before and after, not the text itself: the summary
    can hold personal data, and the audit log is never deleted.
    """
    summary = summary.strip()[:20000]
    if not summary:
        raise PacketError("Write an incident summary for the recipient.", field="summary")
    with transaction.atomic():
        locked = ReferralPacket.objects.select_for_update().get(pk=packet.pk)
        if locked.status != ReferralPacket.Status.DRAFT:
            raise PacketConflict(
                "Only a draft's summary can be edited (this one is "
                f"{locked.get_status_display().lower()})."
            )
        before, previous_drafter = locked.summary, locked.drafted_by_id
        locked.summary = summary
        locked.drafted_by = lead
        locked.save(update_fields=["summary", "drafted_by", "updated_at"])
        audit_record(
            actor=lead,
            verb="packet.summary_edited",
            obj=locked,
            data={
                "before_sha256": hashlib.sha256(before.encode()).hexdigest(),
                "before_length": len(before),
                "after_sha256": hashlib.sha256(summary.encode()).hexdigest(),
                "after_length": len(summary),
                "previous_drafter": previous_drafter,
            },
        )
    return locked


def packet_submit(
    *,
    packet: ReferralPacket,
    lead: Any,
    identity_documents: str = "",
    identity_documents_detail: str = "",
) -> ReferralPacket:
    """Send a draft for approval. For rule- or system-drafted packets the submitting lead
    becomes the drafter, so a *second* lead must approve.

    A report to the NCA must say whether the provider holds identity documents for the user
    (Schedule 1 para 5): the submitting lead records it; it is never assumed."""
    _check_identity_documents(identity_documents, identity_documents_detail)
    with transaction.atomic():
        locked = (
            ReferralPacket.objects.select_for_update()
            .select_related("destination")
            .get(pk=packet.pk)
        )
        if locked.status != ReferralPacket.Status.DRAFT:
            raise PacketError(f"Only drafts can be submitted (this one is {locked.status}).")
        if identity_documents:
            locked.identity_documents = identity_documents
            locked.identity_documents_detail = identity_documents_detail.strip()[:1000]
        if locked.destination.kind == Destination.Kind.NCA_CEOP and not locked.identity_documents:
            raise PacketError(
                "A report to the NCA must say whether identity documents for the user are "
                "held: record held, not held or not known.",
                field="identity_documents",
            )
        if locked.drafted_by_id is None:
            locked.drafted_by = lead
        locked.status = ReferralPacket.Status.AWAITING_APPROVAL
        locked.save(
            update_fields=[
                "status",
                "drafted_by",
                "identity_documents",
                "identity_documents_detail",
                "updated_at",
            ]
        )
        audit_record(
            actor=lead,
            verb="packet.submitted",
            obj=locked,
            data={"identity_documents": locked.identity_documents},
        )
    return locked


def packet_approve(
    *, packet: ReferralPacket, lead: Any, declaration_confirmed: bool
) -> ReferralPacket:
    """Four eyes: a second lead, never the drafter, approves and confirms the packet's
    declaration (that it contains all information reasonably available and no imagery); the
    build is queued after commit. A live NCA report needs its authorised person configured."""
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
        if not declaration_confirmed:
            raise PacketError(
                "Confirm the declaration before approving.", field="declaration_confirmed"
            )
        if (
            locked.destination.kind == Destination.Kind.NCA_CEOP
            and locked.destination.mode != Destination.Mode.DRY_RUN
            and not authorised_person()["name"]
        ):
            raise PacketConflict(
                "A report to the NCA names the person registered with its reporting service: "
                "set SAFEGUARD_NCA_AUTHORISED_PERSON_NAME first."
            )
        now = timezone.now()
        locked.status = ReferralPacket.Status.BUILDING
        locked.approved_by = lead
        locked.approved_at = now
        locked.declaration_confirmed_at = now
        locked.progress = 0
        locked.save(
            update_fields=[
                "status",
                "approved_by",
                "approved_at",
                "declaration_confirmed_at",
                "progress",
                "updated_at",
            ]
        )
        audit_record(
            actor=lead,
            verb="packet.approved",
            obj=locked,
            data={"drafted_by": locked.drafted_by_id, "declaration_confirmed": True},
        )
        enqueue_on_commit("reports.build_packet", locked.pk)
    return locked


def _progress(packet_id: int, value: int) -> None:
    ReferralPacket.objects.filter(pk=packet_id).update(progress=value)


def packet_build(*, packet_id: int, actor: Actor = WORKER) -> ReferralPacket | None:
    """Build the signed zip. Idempotent: a ready packet is left alone, a build in progress
    too; a killed build is retried (by the sweeper, packet_sweep_stuck).

    1. Claim the attempt (status still building, and no build started within the task's hard
       time limit), counting attempts.
    2. Build the files in memory (text only), write the zip to a temporary file in private
       storage, then rename it into place: readers see a whole packet or none.
    3. Mark it ready with the zip's and the manifest's SHA-256.
    """
    # The claim is the conditional UPDATE. A build started less than the hard time limit ago
    # is still running (or is killed by then): a second message for the packet (a duplicate
    # delivery, the sweeper) must not build it again beside it, or both would write the zip —
    # the later replacing the file whose SHA-256 the first recorded — and both audit
    # packet.built (two worker processes did, in tests/test_scale_out.py).
    now = timezone.now()
    running_since = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    if (
        not ReferralPacket.objects.filter(pk=packet_id, status=ReferralPacket.Status.BUILDING)
        .filter(Q(build_started_at__isnull=True) | Q(build_started_at__lt=running_since))
        .update(build_attempts=F("build_attempts") + 1, build_started_at=now, progress=10)
    ):
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
        # build_started_at cleared: the failed attempt's start must not hold the new one off.
        if not ReferralPacket.objects.filter(
            pk=packet.pk, status=ReferralPacket.Status.FAILED
        ).update(
            status=ReferralPacket.Status.BUILDING, progress=0, error="", build_started_at=None
        ):
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
        *SENT,
    ):
        raise PacketConflict(
            f"The packet is not ready (it is {packet.get_status_display().lower()})."
        )
    stored_packet_bytes(packet=packet, actor=lead, during="download")
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
    return packet_path(packet)


def packet_record_submission(
    *,
    packet: ReferralPacket,
    lead: Any,
    channel: str,
    reference: str = "",
    submitted_at: datetime | None = None,
) -> ReferralPacket:
    """A lead sent the downloaded packet to the recipient (through its portal, by email or by
    phone): record when, how and by whom. With the recipient's reference it is acknowledged
    at once; otherwise an urgent or immediate report waits for it against a deadline."""
    if channel not in CHANNELS:
        raise PacketError(f"Choose how it was sent: {', '.join(CHANNELS)}.", field="channel")
    now = timezone.now()
    submitted_at = submitted_at or now
    if submitted_at > now + timedelta(minutes=5):
        raise PacketError("The submission time is in the future.", field="submitted_at")
    reference = reference.strip()[:200]
    with transaction.atomic():
        locked = (
            ReferralPacket.objects.select_for_update()
            .select_related("destination")
            .get(pk=packet.pk)
        )
        if locked.destination.mode == Destination.Mode.DRY_RUN:
            raise PacketConflict(
                f"{locked.destination.name} is in dry run: nothing is sent to it. An admin "
                "records its contact route and switches it to test or production first."
            )
        if locked.status != ReferralPacket.Status.EXPORTED:
            raise PacketConflict(
                "Only downloaded packets can be recorded as sent (this one is "
                f"{locked.get_status_display().lower()})."
            )
        locked.status = (
            ReferralPacket.Status.ACKNOWLEDGED if reference else ReferralPacket.Status.SUBMITTED
        )
        locked.submitted_at = submitted_at
        locked.submitted_by = lead
        locked.submission_channel = channel
        if reference:
            locked.external_reference = reference
            locked.acknowledged_at = now
        elif locked.priority != ReferralPacket.Priority.ROUTINE:
            locked.ack_due_at = submitted_at + timedelta(
                hours=settings.SAFEGUARD_REFERRAL_ACK_HOURS
            )
        locked.save()
        audit_record(
            actor=lead,
            verb="packet.sent",
            obj=locked,
            data={
                "channel": channel,
                "submitted_at": submitted_at.isoformat(),
                "external_reference": reference,
            },
        )
    return locked


def packet_acknowledge(*, packet: ReferralPacket, lead: Any, reference: str) -> ReferralPacket:
    """Record the recipient's reference for a sent packet."""
    reference = reference.strip()
    if not reference:
        raise PacketError("Record the recipient's reference.", field="reference")
    with transaction.atomic():
        if not ReferralPacket.objects.filter(
            pk=packet.pk, status=ReferralPacket.Status.SUBMITTED
        ).update(
            status=ReferralPacket.Status.ACKNOWLEDGED,
            external_reference=reference[:200],
            acknowledged_at=timezone.now(),
        ):
            raise PacketError("Only packets sent to the recipient can be acknowledged.")
        audit_record(
            actor=lead,
            verb="packet.acknowledged",
            obj=packet,
            data={"external_reference": reference[:200]},
        )
    packet.refresh_from_db()
    return packet


def _record_breaches(
    waiting: Any, *, due_field: str, breached_field: str, verb: str, now: datetime
) -> int:
    """Mark each waiting packet breached once (a conditional update: a concurrent beat run
    cannot count one twice) and audit it in the same transaction."""
    count = 0
    for packet_id, due in waiting.values_list("pk", due_field)[:500]:
        with transaction.atomic():
            if ReferralPacket.objects.filter(
                pk=packet_id, **{f"{breached_field}__isnull": True}
            ).update(**{breached_field: now}):
                audit_record(
                    actor=WORKER,
                    verb=verb,
                    obj=ReferralPacket(pk=packet_id),
                    data={"due": due.isoformat()},
                )
                count += 1
    return count


def packet_sla_check(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: a report not sent by its due time, and an urgent report whose recipient has not
    acknowledged it in time, are breaches: recorded once each, audited, shown to leads."""
    now = now or timezone.now()
    unsent = ReferralPacket.objects.filter(
        report_due_at__lt=now, report_breached_at__isnull=True, submitted_at__isnull=True
    ).exclude(status__in=SENT)
    waiting = ReferralPacket.objects.filter(
        status=ReferralPacket.Status.SUBMITTED, ack_due_at__lt=now, ack_breached_at__isnull=True
    )
    return {
        "report_overdue": _record_breaches(
            unsent,
            due_field="report_due_at",
            breached_field="report_breached_at",
            verb="packet.report_overdue",
            now=now,
        ),
        "acknowledgement_overdue": _record_breaches(
            waiting,
            due_field="ack_due_at",
            breached_field="ack_breached_at",
            verb="packet.acknowledgement_overdue",
            now=now,
        ),
    }
