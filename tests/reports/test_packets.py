"""Referral packets: four eyes, contents, no images, signatures, permissions, holds."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from core.models import AuditEvent
from moderation.escalations import (
    case_mark_immediate_risk,
    escalation_acknowledge,
    escalation_record_call,
)
from moderation.models import Media, PurgeReceipt, Reveal
from moderation.queue import case_claim_next
from moderation.retention import HeldError, media_delete, retention_purge
from moderation.review import decision_record, media_reveal
from principles.models import HarmCategory
from reports.builder import MediaInPacket, _refuse_media, looks_like_media, referral_document
from reports.builder import validate_referral as schema_validate
from reports.models import Destination, ReferralPacket
from reports.services import PacketError, packet_approve, packet_draft, packet_submit
from tests.conftest import client_for
from tests.moderation.factories import make_case


def _police() -> Destination:
    return Destination.objects.create(name="Kent Police", kind="police", police_force="Kent Police")


def _decided_case(moderator: Any) -> Any:
    case = make_case(kind="image", category="grooming")
    claimed = case_claim_next(user=moderator)
    media = Media.objects.get(item__case=case)
    media_reveal(media=media, case=claimed, user=moderator, reason="assess the image")
    decision_record(
        case=claimed,
        moderator=moderator,
        outcome="remove_and_report",
        categories=[HarmCategory.objects.get(code="grooming")],
        rationale="synthetic rationale",
    )
    return case


def _ready_packet(
    moderator: Any, lead: Any, lead2: Any, callbacks: Any, destination: Destination | None = None
) -> ReferralPacket:
    case = _decided_case(moderator)
    response = client_for(lead).post(
        "/api/v1/referrals",
        {
            "cases": [case.pk],
            "destination": (destination or _police()).pk,
            "priority": "urgent",
            "summary": "Adult account grooming a child (synthetic test).",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    packet_id = response.json()["id"]
    with callbacks(execute=True):
        response = client_for(lead2).post(f"/api/v1/referrals/{packet_id}/approve")
    assert response.status_code == 200, response.content
    packet = ReferralPacket.objects.get(pk=packet_id)
    assert packet.status == "ready", packet.error
    return packet


def _download(client: Any, packet: ReferralPacket) -> bytes:
    response = client.get(f"/api/v1/referrals/{packet.pk}/download")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


@pytest.mark.django_db
class LifecycleTests:
    def test_a_lead_drafts_a_second_lead_approves_a_worker_builds_it_is_downloaded(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        data = _download(client_for(lead), packet)
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
            "packet.acknowledged",
        } <= verbs

    def test_the_drafter_cannot_approve_and_refusals_leave_the_state_unchanged(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        case = _decided_case(moderator)
        response = client_for(lead).post(
            "/api/v1/referrals",
            {
                "cases": [case.pk],
                "destination": _police().pk,
                "priority": "routine",
                "summary": "s",
            },
            format="json",
        )
        packet_id = response.json()["id"]
        response = client_for(lead).post(f"/api/v1/referrals/{packet_id}/approve")
        assert (
            response.status_code == 409
            and "second safety lead" in response.json()["error"]["message"]
        )
        assert ReferralPacket.objects.get(pk=packet_id).status == "awaiting_approval"
        response = client_for(lead).get(f"/api/v1/referrals/{packet_id}/download")
        assert response.status_code == 409 and "not ready" in response.json()["error"]["message"]
        packet_approve(packet=ReferralPacket.objects.get(pk=packet_id), lead=lead2)
        with pytest.raises(PacketError, match="awaiting approval"):
            packet_approve(packet=ReferralPacket.objects.get(pk=packet_id), lead=lead2)

    def test_a_disabled_destination_and_an_empty_case_are_refused(
        self, moderator: Any, lead: Any
    ) -> None:
        case = _decided_case(moderator)
        destination = _police()
        destination.enabled = False
        destination.save()
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
                cases=[], destination=_police_other(), priority="routine", summary="s", actor=lead
            )
        assert not ReferralPacket.objects.exists()

    def test_a_rule_or_999_draft_is_submitted_by_a_lead_who_then_cannot_approve_it(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message", category="grooming"),
            actor=moderator,
            reason="meeting tonight",
        )
        escalation_acknowledge(escalation=escalation, lead=lead)
        escalation_record_call(
            escalation=escalation,
            lead=lead,
            called_at=timezone.now(),
            police_force="Thames Valley Police",
            incident_reference="CAD 77/28NOV",
        )
        packet = ReferralPacket.objects.get(escalation=escalation)
        assert packet.priority == "immediate" and packet.status == "draft"
        assert packet.destination.police_force == "Thames Valley Police"
        packet_submit(packet=packet, lead=lead)
        with pytest.raises(PacketError, match="second safety lead"):
            packet_approve(packet=packet, lead=lead)
        packet_approve(packet=packet, lead=lead2)


def _police_other() -> Destination:
    return Destination.objects.create(
        name="Essex Police", kind="police", police_force="Essex Police"
    )


@pytest.mark.django_db
class ContentsTests:
    def test_referral_json_is_valid_against_the_committed_schema_and_truthful(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        archive = zipfile.ZipFile(io.BytesIO(_download(client_for(lead), packet)))
        document = json.loads(archive.read("referral.json"))
        schema_validate(document)
        item = document["items"][0]
        assert item["viewed_by_provider"] is True  # from the reveal log
        assert Reveal.objects.count() == 1
        assert item["file"]["hashes"]["sha256"] == Media.objects.get().sha256
        assert len(item["file"]["hashes"]["pdq"]) == 64
        assert document["priority"] == "urgent" and 12 in document["principles"]
        assert document["preservation"]["status"] == "preserved under a legal hold"
        assert document["decisions"][0]["principles"] == [3, 7, 12]
        custody = json.loads(archive.read("custody.json"))
        assert {"media.stored", "media.hashed", "media.revealed", "decision.recorded"} <= {
            e["action"] for e in custody
        }

    def test_a_document_missing_required_fields_fails_validation(
        self, moderator: Any, lead: Any
    ) -> None:
        import jsonschema

        packet = packet_draft(
            cases=[_decided_case(moderator)],
            destination=_police(),
            priority="routine",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        document = referral_document(packet)
        schema_validate(document)
        del document["declaration"]
        with pytest.raises(jsonschema.ValidationError):
            schema_validate(document)

    def test_the_pdf_names_the_reference_and_priority(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        from pypdf import PdfReader

        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        archive = zipfile.ZipFile(io.BytesIO(_download(client_for(lead), packet)))
        text = "".join(
            page.extract_text() for page in PdfReader(io.BytesIO(archive.read("summary.pdf"))).pages
        )
        assert packet.reference in text and "URGENT" in text
        assert packet.cases.get().reference in text

    def test_the_nca_packet_covers_the_schedule_1_headings(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        nca = Destination.objects.get(kind="nca_ceop")
        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks, nca)
        archive = zipfile.ZipFile(io.BytesIO(_download(client_for(lead), packet)))
        schedule = json.loads(archive.read("referral.json"))["nca_schedule_1"]
        assert set(schedule) == {
            "submitter",
            "content",
            "further_information",
            "user_identified",
            "identity_documents_held",
            "other_available_information",
            "declaration",
        }

    def test_the_ncmec_adapter_is_off_by_default_and_renders_xml_when_enabled(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        settings: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        ncmec = Destination.objects.create(name="NCMEC", kind="ncmec", jurisdiction="US")
        with pytest.raises(PacketError, match="not enabled"):
            packet_draft(
                cases=[make_case(kind="image")],
                destination=ncmec,
                priority="routine",
                summary="s",
                actor=lead,
            )
        settings.SAFEGUARD_NCMEC_ENABLED = True
        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks, ncmec)
        archive = zipfile.ZipFile(io.BytesIO(_download(client_for(lead), packet)))
        xml = archive.read("cybertipline.xml").decode()
        assert "<fileViewedByEsp>true</fileViewedByEsp>" in xml and "SHA256" in xml


@pytest.mark.django_db
class NoImagesTests:
    def test_no_file_of_a_built_packet_is_an_image_or_video(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        raw = Path(Media.objects.get().file.path).read_bytes()
        data = _download(client_for(lead), packet)
        assert raw[:256] not in data
        archive = zipfile.ZipFile(io.BytesIO(data))
        for name in archive.namelist():
            content = archive.read(name)
            assert not looks_like_media(content), name
            assert raw[:64] not in content, name

    def test_the_builder_refuses_binary_media_from_any_source(self) -> None:
        from moderation.media.synthetic import synthetic_jpeg, synthetic_png

        for data in (
            synthetic_jpeg(1, 32, 32),
            synthetic_png(1, 32, 32),
            b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20,
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        ):
            with pytest.raises(MediaInPacket):
                _refuse_media("x", data)


@pytest.mark.django_db
class SignatureTests:
    def test_verify_packet_accepts_a_good_packet_and_names_a_tampered_file(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        tmp_path: Path,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        good = tmp_path / "good.zip"
        good.write_bytes(_download(client_for(lead), packet))
        out = StringIO()
        call_command("verify_packet", str(good), stdout=out)
        assert "OK" in out.getvalue()
        source = zipfile.ZipFile(good)
        for victim, expected in (
            ("referral.json", "referral.json does not match"),
            ("manifest.json", "signature does not match"),
        ):
            bad = tmp_path / f"bad-{victim}.zip"
            with zipfile.ZipFile(bad, "w") as out_zip:
                for name in source.namelist():
                    content = source.read(name)
                    if name == victim:
                        content = (
                            content.replace(b"RP-", b"RX-", 1)
                            if victim == "manifest.json"
                            else content.replace(b"synthetic", b"SYNTHETIC")
                        )
                    out_zip.writestr(name, content)
            with pytest.raises(CommandError, match=expected):
                call_command("verify_packet", str(bad), stdout=StringIO())

    def test_the_same_inputs_give_the_same_manifest(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        from reports.builder import build_packet_zip

        packet = packet_draft(
            cases=[_decided_case(moderator)],
            destination=_police(),
            priority="routine",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        packet_submit(packet=packet, lead=lead)
        ReferralPacket.objects.filter(pk=packet.pk).update(approved_at=timezone.now())
        packet.refresh_from_db()
        first, manifest_1 = build_packet_zip(packet)
        second, manifest_2 = build_packet_zip(packet)
        assert manifest_1 == manifest_2
        files_1 = {
            n: zipfile.ZipFile(io.BytesIO(first)).read(n)
            for n in zipfile.ZipFile(io.BytesIO(first)).namelist()
            if n != "manifest.sig"
        }
        files_2 = {
            n: zipfile.ZipFile(io.BytesIO(second)).read(n)
            for n in zipfile.ZipFile(io.BytesIO(second)).namelist()
            if n != "manifest.sig"
        }
        assert files_1 == files_2

    def test_a_rebuild_after_a_killed_build_completes_once(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        from reports.services import packet_build, packet_sweep_stuck

        packet = packet_draft(
            cases=[_decided_case(moderator)],
            destination=_police(),
            priority="routine",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        packet_submit(packet=packet, lead=lead)
        packet_approve(packet=packet, lead=lead2)  # on_commit not run: the "worker died"
        ReferralPacket.objects.filter(pk=packet.pk).update(
            build_started_at=timezone.now() - timedelta(hours=1)
        )
        assert packet_sweep_stuck() == [packet.pk]
        assert packet_build(packet_id=packet.pk).status == "ready"
        assert packet_build(packet_id=packet.pk).status == "ready"  # duplicate delivery: no-op
        assert AuditEvent.objects.filter(verb="packet.built").count() == 1


@pytest.mark.django_db
class PermissionTests:
    def test_moderators_outsiders_and_anonymous_cannot_touch_packets(
        self,
        moderator: Any,
        outsider: Any,
        lead: Any,
        lead2: Any,
        client: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        for user in (moderator, outsider):
            c = client_for(user)
            assert c.get(f"/api/v1/referrals/{packet.pk}").status_code == 403
            assert c.get(f"/api/v1/referrals/{packet.pk}/download").status_code == 403
            assert c.post(f"/api/v1/referrals/{packet.pk}/approve").status_code == 403
            assert c.get(f"/referrals/{packet.pk}/").status_code == 403
            assert c.get(f"/referrals/{packet.pk}/download").status_code == 403
        assert client.get(f"/api/v1/referrals/{packet.pk}").status_code in (401, 403)

    def test_a_lead_without_object_permission_gets_404(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        from django.contrib.auth.models import Group
        from guardian.shortcuts import remove_perm

        packet = _ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        group = Group.objects.get(name="Safety lead")
        for perm in ("view_referralpacket", "download_referralpacket", "approve_referralpacket"):
            remove_perm(f"reports.{perm}", group, packet)
        assert client_for(lead).get(f"/api/v1/referrals/{packet.pk}").status_code == 404
        assert client_for(lead).get(f"/referrals/{packet.pk}/download").status_code == 404


@pytest.mark.django_db
class PreservationTests:
    def test_a_referral_places_a_legal_hold_that_blocks_deletion_and_the_purge_skips_it(
        self, moderator: Any, lead: Any, settings: Any
    ) -> None:
        held = _decided_case(moderator)
        packet_draft(
            cases=[held],
            destination=_police(),
            priority="routine",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        free = _decided_case(moderator)
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
class RuleActionTests:
    def test_a_rule_can_draft_a_referral_to_an_existing_destination(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        from moderation.rules import RuleInvalid, rule_save

        with pytest.raises(RuleInvalid, match="no destination named 'Nowhere'"):
            rule_save(
                actor=admin_user,
                name="r",
                conditions=[{"field": "category", "op": "eq", "value": "grooming"}],
                actions=[{"type": "draft_referral", "destination": "Nowhere"}],
            )
        rule_save(
            actor=admin_user,
            name="r",
            conditions=[{"field": "category", "op": "eq", "value": "grooming"}],
            actions=[{"type": "draft_referral", "destination": "NCA / CEOP"}],
        )
        with django_capture_on_commit_callbacks(execute=True):
            case = make_case(kind="message", category="grooming")
        packet = ReferralPacket.objects.get()
        assert list(packet.cases.all()) == [case] and packet.status == "draft"
