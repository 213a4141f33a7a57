"""The referral packet workflow (reports.packets): lifecycle, refusals, rebuilds, legal holds."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from core.errors import Conflict, DomainError
from core.models import AuditEvent
from moderation.models import Media, PurgeReceipt
from moderation.services.retention import HeldError, media_delete, retention_purge
from reports.models import ReferralPacket
from reports.packets import (
    PacketConflict,
    PacketError,
    packet_approve,
    packet_build,
    packet_draft,
    packet_retry,
    packet_sla_check,
    packet_sweep_stuck,
)
from tests.conftest import client_for
from tests.reports.factories import submitted_packet

from .factories import decided_case, download, live, other_police, police, ready_packet


@pytest.mark.django_db
class LifecycleTests:
    def test_a_lead_drafts_a_second_lead_approves_a_worker_builds_it_is_downloaded(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(
            moderator, lead, lead2, django_capture_on_commit_callbacks, live(police())
        )
        data = download(client_for(lead), packet)
        packet.refresh_from_db()
        assert packet.status == "exported" and packet.exported_at is not None
        assert zipfile.ZipFile(io.BytesIO(data)).namelist() == sorted(
            [
                "README.txt",
                "custody.json",
                "manifest.json",
                "manifest.sig",
                "referral.json",
                "signing-key.pub",
                "summary.pdf",
            ]
        )
        response = client_for(lead).post(f"/referrals/{packet.pk}/sent", {"channel": "email"})
        assert response.status_code == 302
        packet.refresh_from_db()
        assert packet.status == "submitted" and packet.submitted_by == lead
        assert packet.ack_due_at is not None  # urgent: the recipient's reference is awaited
        response = client_for(lead).post(
            f"/referrals/{packet.pk}/acknowledge", {"reference": "KENT-2026-0001"}
        )
        assert response.status_code == 302
        packet.refresh_from_db()
        assert packet.status == "acknowledged" and packet.external_reference == "KENT-2026-0001"
        verbs = set(
            AuditEvent.objects.filter(object_type="reports.referralpacket").values_list(
                "verb", flat=True
            )
        )
        assert {
            "packet.drafted",
            "packet.submitted",
            "packet.approved",
            "packet.built",
            "packet.downloaded",
            "packet.sent",
            "packet.acknowledged",
        } <= verbs

    def test_a_disabled_destination_and_an_empty_case_are_refused(
        self, moderator: Any, lead: Any
    ) -> None:
        case = decided_case(moderator)
        destination = police()
        destination.enabled = False
        destination.save(update_fields=["enabled"])
        with pytest.raises(PacketError, match="disabled"):
            packet_draft(
                cases=[case],
                destination=destination,
                priority="routine",
                summary="s",
                actor=lead,
                drafted_by=lead,
            )
        with pytest.raises(PacketError, match="at least one case"):
            packet_draft(
                cases=[], destination=other_police(), priority="routine", summary="s", actor=lead
            )
        assert not ReferralPacket.objects.exists()

    def test_a_rebuild_after_a_killed_build_completes_once(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        packet = submitted_packet(moderator, lead)
        packet_approve(
            packet=packet, lead=lead2, declaration_confirmed=True
        )  # on_commit not run: the "worker died"
        ReferralPacket.objects.filter(pk=packet.pk).update(
            build_started_at=timezone.now() - timedelta(hours=1)
        )
        assert packet_sweep_stuck() == [packet.pk]
        assert packet_build(packet_id=packet.pk).status == "ready"
        assert packet_build(packet_id=packet.pk).status == "ready"  # duplicate delivery: no-op
        assert AuditEvent.objects.filter(verb="packet.built").count() == 1

    def test_a_second_message_leaves_a_build_in_progress_alone(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        packet = submitted_packet(moderator, lead)
        packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)
        # Another worker process claimed it a moment ago and is building it.
        ReferralPacket.objects.filter(pk=packet.pk).update(
            build_started_at=timezone.now(), build_attempts=1
        )
        assert packet_build(packet_id=packet.pk).status == "building"
        packet.refresh_from_db()
        assert packet.build_attempts == 1 and not packet.file
        assert not AuditEvent.objects.filter(verb="packet.built").exists()

    def test_a_retried_packet_builds_at_once_after_a_recent_failure(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        packet = submitted_packet(moderator, lead)
        packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)
        ReferralPacket.objects.filter(pk=packet.pk).update(
            status="failed", build_started_at=timezone.now(), build_attempts=1
        )
        packet_retry(packet=packet, lead=lead)
        assert packet_build(packet_id=packet.pk).status == "ready"

    def test_an_approval_enqueues_the_build_after_commit(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = submitted_packet(moderator, lead)
        with django_capture_on_commit_callbacks() as callbacks:
            packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)
        assert len(callbacks) == 1
        assert ReferralPacket.objects.get(pk=packet.pk).status == "building"
        callbacks[0]()
        assert ReferralPacket.objects.get(pk=packet.pk).status == "ready"


class RefusalTests:
    def test_packet_refusals_are_domain_errors_and_state_conflicts_are_409s(self) -> None:
        assert issubclass(PacketError, DomainError)
        refused = PacketError("Record the recipient's reference.")
        assert (refused.status, refused.code, refused.field) == (400, "invalid", "detail")
        conflict = PacketConflict("Only packets awaiting approval can be approved.")
        assert isinstance(conflict, PacketError) and isinstance(conflict, Conflict)
        assert (conflict.status, conflict.code, conflict.field) == (409, "conflict", None)
        assert conflict.api_body() == {
            "code": "conflict",
            "message": "Only packets awaiting approval can be approved.",
        }


@pytest.mark.django_db
class PreservationTests:
    def test_a_referral_places_a_legal_hold_that_blocks_deletion_and_the_purge_skips_it(
        self, moderator: Any, lead: Any, settings: Any
    ) -> None:
        held = decided_case(moderator)
        packet_draft(
            cases=[held],
            destination=police(),
            priority="routine",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        free = decided_case(moderator)
        held_media = Media.objects.get(item__case=held)
        with pytest.raises(HeldError):
            media_delete(media=held_media, actor=lead, reason="test")
        settings.SAFEGUARD_RETENTION_DAYS = 1
        result = retention_purge(now=timezone.now() + timedelta(days=5))
        assert result == {"purged": 1, "held": 1}
        receipt = PurgeReceipt.objects.get()
        free_media = Media.objects.get(item__case=free)
        assert receipt.sha256 == free_media.sha256 and free_media.purged_at is not None
        assert Path(held_media.file.path).exists()
        assert AuditEvent.objects.filter(verb="media.purged").count() == 1


@pytest.mark.django_db
class ReceiptTests:
    def test_nothing_is_recorded_as_sent_to_a_dry_run_destination(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        download(client_for(lead), packet)
        response = client_for(lead).post(
            f"/api/v1/referrals/{packet.pk}/sent", {"channel": "email"}, format="json"
        )
        assert response.status_code == 409 and "dry run" in response.json()["error"]["message"]
        packet.refresh_from_db()
        assert packet.status == "exported" and packet.submitted_at is None

    def test_sent_with_the_recipients_reference_is_acknowledged_at_once(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(
            moderator, lead, lead2, django_capture_on_commit_callbacks, live(police())
        )
        client = client_for(lead)
        response = client.post(
            f"/api/v1/referrals/{packet.pk}/sent", {"channel": "portal"}, format="json"
        )
        assert response.status_code == 409  # not downloaded yet: nothing to send
        download(client, packet)
        response = client.post(
            f"/api/v1/referrals/{packet.pk}/sent", {"channel": "fax"}, format="json"
        )
        assert response.status_code == 400 and "channel" in response.json()["error"]["fields"]
        response = client.post(
            f"/api/v1/referrals/{packet.pk}/sent",
            {"channel": "portal", "reference": "KENT-77"},
            format="json",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["status"] == "acknowledged" and body["external_reference"] == "KENT-77"
        assert body["submitted_by"] == lead.pk and body["submission_channel"] == "portal"
        assert body["submitted_at"] and body["acknowledged_at"] and body["ack_due_at"] is None

    def test_overdue_reports_and_acknowledgements_are_breaches_recorded_once(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        unsent = submitted_packet(moderator, lead)
        assert unsent.detected_at is not None
        assert unsent.report_due_at == unsent.detected_at + timedelta(hours=72)  # routine
        sent = ready_packet(
            moderator, lead, lead2, django_capture_on_commit_callbacks, live(police())
        )
        client = client_for(lead)
        download(client, sent)
        client.post(f"/api/v1/referrals/{sent.pk}/sent", {"channel": "email"}, format="json")
        sent.refresh_from_db()
        assert sent.status == "submitted" and sent.ack_due_at is not None
        later = timezone.now() + timedelta(days=4)
        assert packet_sla_check(now=later) == {"report_overdue": 1, "acknowledgement_overdue": 1}
        assert packet_sla_check(now=later) == {"report_overdue": 0, "acknowledgement_overdue": 0}
        unsent.refresh_from_db()
        sent.refresh_from_db()
        assert unsent.report_breached_at == later and sent.ack_breached_at == later
        assert sent.report_breached_at is None  # it was sent in time
        verbs = list(
            AuditEvent.objects.filter(verb__startswith="packet.").values_list("verb", flat=True)
        )
        assert verbs.count("packet.report_overdue") == 1
        assert verbs.count("packet.acknowledgement_overdue") == 1
        page = client.get("/referrals/").content.decode()
        assert "report overdue" in page and "no acknowledgement" in page
