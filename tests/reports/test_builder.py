"""The packet builder (reports.builder): truthful contents, no images, determinism."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.utils import timezone
from pypdf import PdfReader

from core.audit import SystemActor
from core.checkpoints import checkpoint_parse
from core.evidence_crypto import evidence_read_bytes
from moderation.media.synthetic import synthetic_jpeg, synthetic_png, write_synthetic_video
from moderation.media.video import hash_video, vpdq_format
from moderation.models import Media, Reveal
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.services.intake import ItemInput, item_submit
from principles.models import HarmCategory
from reports.builder import (
    MediaInPacket,
    _refuse_media,
    build_packet_zip,
    looks_like_media,
    referral_document,
)
from reports.builder import validate_referral as schema_validate
from reports.models import Destination, ReferralPacket
from reports.ncmec import report_problems
from reports.packets import (
    PacketConflict,
    PacketError,
    packet_approve,
    packet_draft,
    packet_submit,
)
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_reported_user_case, make_video_item
from tests.reports.factories import drafted_packet, submitted_packet

from .factories import decided_case, download, police, ready_packet


@pytest.mark.django_db
class ContentsTests:
    def test_referral_json_is_valid_against_the_committed_schema_and_truthful(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        archive = zipfile.ZipFile(io.BytesIO(download(client_for(lead), packet)))
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
            e["action"] for e in custody["events"]
        }
        # The signed checkpoint that covers the custody events, checkable offline.
        checkpoint = checkpoint_parse(json.dumps(custody["audit_checkpoint"]).encode())
        assert checkpoint.seq >= max(e["audit_seq"] for e in custody["events"])

    def test_a_document_missing_required_fields_fails_validation(
        self, moderator: Any, lead: Any
    ) -> None:
        packet = drafted_packet(moderator, lead)
        document = referral_document(packet)
        schema_validate(document)
        del document["declaration"]
        with pytest.raises(jsonschema.ValidationError):
            schema_validate(document)

    def test_the_pdf_names_the_reference_and_priority(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        archive = zipfile.ZipFile(io.BytesIO(download(client_for(lead), packet)))
        text = "".join(
            page.extract_text() for page in PdfReader(io.BytesIO(archive.read("summary.pdf"))).pages
        )
        assert packet.reference in text and "URGENT" in text
        assert packet.cases.get().reference in text

    def test_the_nca_packet_carries_every_schedule_1_heading_from_the_case(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        settings: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        settings.SAFEGUARD_NCA_AUTHORISED_PERSON_NAME = "Alex Example"
        settings.SAFEGUARD_NCA_AUTHORISED_PERSON_ROLE = "Head of Safety"
        nca = Destination.objects.get(code="nca")
        case = make_reported_user_case()
        client = client_for(lead)
        body = {
            "cases": [case.pk],
            "destination": nca.pk,
            "priority": "immediate",
            "summary": "Adult account coercing a child (synthetic test).",
        }
        response = client.post("/api/v1/referrals", body, format="json")
        assert response.status_code == 400  # the NCA needs the identity-documents answer
        assert "identity_documents" in response.json()["error"]["fields"]
        response = client.post(
            "/api/v1/referrals",
            {
                **body,
                "identity_documents": "held",
                "identity_documents_detail": "passport scan from age verification, vault A",
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        packet_id = response.json()["id"]
        approve = f"/api/v1/referrals/{packet_id}/approve"
        response = client_for(lead2).post(approve, {}, format="json")
        assert response.status_code == 400
        assert "declaration_confirmed" in response.json()["error"]["fields"]
        assert ReferralPacket.objects.get(pk=packet_id).status == "awaiting_approval"
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(lead2).post(
                approve, {"declaration_confirmed": True}, format="json"
            )
        assert response.status_code == 200, response.content
        packet = ReferralPacket.objects.get(pk=packet_id)
        archive = zipfile.ZipFile(io.BytesIO(download(client, packet)))
        document = json.loads(archive.read("referral.json"))
        schedule = document["nca_schedule_1"]
        assert "Staging copy for the NCA" in schedule["staging_notice"]
        assert schedule["authorised_person"]["name"] == "Alex Example"  # 1
        (content,) = schedule["detected_content"]  # 2
        assert content["kind"] == "message" and content["case_reference"] == case.reference
        further = schedule["further_information"]  # 3
        assert further["priority_handling"] is True and further["priority_reason"]
        assert further["detected_at"] == document["incident"]["detected_at"]
        (user,) = schedule["user_identified"]  # 4
        assert user["account_id"] == "user-42" and user["email"] == "sam@example.org"
        assert user["display_name"] == "Sam Example" and user["phone"] == "+44 7700 900123"
        (event,) = user["ip_events"]
        assert event["ip_address"] == "2001:db8::7" and event["port"] == 51234
        assert event["seen_at"] is not None
        assert user["linked_accounts"] == ["user-43", "sam_alt"]
        assert schedule["identity_documents"] == {  # 5
            "status": "held",
            "detail": "passport scan from age verification, vault A",
            "recorded_by": lead.get_username(),
        }
        assert schedule["other_available_information"]  # 6
        assert schedule["declaration"]["confirmed_by"] == lead2.get_username()  # 7
        assert schedule["declaration"]["confirmed_at"] is not None
        assert schedule["recipient_reference"] is None
        text = "".join(
            page.extract_text() for page in PdfReader(io.BytesIO(archive.read("summary.pdf"))).pages
        )
        assert "Alex Example" in text and "Identity documents: held" in text

    def test_a_live_nca_report_needs_its_authorised_person(
        self, moderator: Any, lead: Any, lead2: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_NCA_AUTHORISED_PERSON_NAME = ""
        nca = Destination.objects.get(code="nca")
        nca.contact_url = "https://nca.example/report"
        nca.mode = "production"
        nca.save()
        packet = packet_draft(
            cases=[decided_case(moderator)],
            destination=nca,
            priority="urgent",
            summary="s",
            actor=lead,
            drafted_by=lead,
            identity_documents="not_held",
        )
        packet_submit(packet=packet, lead=lead)
        with pytest.raises(PacketConflict, match="SAFEGUARD_NCA_AUTHORISED_PERSON_NAME"):
            packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)
        packet.refresh_from_db()
        assert packet.status == "awaiting_approval"

    def test_packets_carry_the_principles_their_content_evidences_with_labels(
        self, moderator: Any, lead: Any
    ) -> None:
        packet = packet_draft(
            cases=[make_case(kind="message", category="search_abuse")],
            destination=police(),
            priority="routine",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        document = referral_document(packet)
        assert document["principles"] == [6]  # search abuse evidences principle 6 only
        assert set(document["principle_labels"]) == {str(n) for n in range(1, 13)}
        assert document["incident"]["category"] == "search_abuse"

    def test_the_iwf_gets_a_url_report_and_items_without_urls_are_refused(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        iwf = Destination.objects.get(code="iwf")
        with pytest.raises(PacketError, match="IWF takes reports of URLs"):
            packet_draft(
                cases=[make_case(kind="message")],
                destination=iwf,
                priority="urgent",
                summary="s",
                actor=lead,
            )
        item, _ = item_submit(
            data=ItemInput(
                source="acme",
                external_id="url-1",
                kind="url",
                url="https://files.example.org/synthetic/abc",
                category_hint=HarmCategory.objects.get(code="new_csam"),
                subject_account_id="user-9",
            ),
            upload=None,
            actor=SystemActor("test"),
        )
        packet = packet_draft(
            cases=[item.case],
            destination=iwf,
            priority="urgent",
            summary="A link to suspected abuse material (synthetic).",
            actor=lead,
            drafted_by=lead,
        )
        packet_submit(packet=packet, lead=lead)
        with django_capture_on_commit_callbacks(execute=True):
            packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)
        packet.refresh_from_db()
        archive = zipfile.ZipFile(io.BytesIO(download(client_for(lead), packet)))
        report = json.loads(archive.read("iwf-url-report.json"))
        assert report["report_type"] == "url" and report["reference"] == packet.reference
        (row,) = report["urls"]
        assert row["url"] == "https://files.example.org/synthetic/abc"
        assert row["harm_categories"] == ["new_csam"] and row["content_type"] == "url"
        readme = archive.read("README.txt").decode()
        assert "iwf-url-report.json is the URL report" in readme and "DRY RUN" in readme

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
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks, ncmec)
        archive = zipfile.ZipFile(io.BytesIO(download(client_for(lead), packet)))
        xml = archive.read("cybertipline.xml")
        assert report_problems(xml) == []  # NCMEC's element order, no empty elements
        text = xml.decode()
        assert "<incidentType>Online Enticement of Children for Sexual Acts</incidentType>" in text
        assert "<personOrUserReported>" in text and "<fileDetails>" not in text
        media = Media.objects.get(item__case__in=packet.cases.all())
        assert media.sha256 in text  # hashes as text: no file is ever uploaded


@pytest.mark.django_db
class NoImagesTests:
    def test_no_file_of_a_built_packet_is_an_image_or_video(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        raw = evidence_read_bytes(Media.objects.get().file.path)
        data = download(client_for(lead), packet)
        assert raw[:256] not in data
        archive = zipfile.ZipFile(io.BytesIO(data))
        for name in archive.namelist():
            content = archive.read(name)
            assert not looks_like_media(content), name
            assert raw[:64] not in content, name

    def test_a_video_case_packet_carries_frame_hashes_and_segments_but_no_frame(
        self, tmp_path: Path, moderator: Any, lead: Any
    ) -> None:
        listed = write_synthetic_video(tmp_path / "listed.mp4", 7, seconds=6)
        frames = hash_video(listed).frames
        hash_list, _ = hash_list_upsert(name="V", algorithm="vpdq", actor=SystemActor("test"))
        imp = hash_import_create(
            hash_list=hash_list,
            content=vpdq_format(frames).encode(),
            filename="v.txt",
            actor=SystemActor("test"),
        )
        hash_import_run(import_id=imp.pk)
        item = make_video_item(listed)
        media = item.media
        packet = packet_draft(
            cases=[item.case],
            destination=police(),
            priority="urgent",
            summary="synthetic",
            actor=lead,
            drafted_by=lead,
        )
        packet.approved_at = timezone.now()
        files, _ = build_packet_zip(packet)
        archive = zipfile.ZipFile(io.BytesIO(files))
        document = json.loads(archive.read("referral.json"))
        video = document["items"][0]["file"]["video"]
        assert video["duration"] == 6.0 and len(video["frames"]) == 6
        assert video["frames"][1] == {
            "frame": frames[1].frame,
            "timestamp": 1.0,
            "quality": frames[1].quality,
            "pdq": frames[1].pdq,
        }
        assert document["items"][0]["matches"][0]["segments"][0]["query_start"] == 0.0
        thumbnails = [evidence_read_bytes(f.thumbnail.path) for f in media.frames.all()]
        raw = evidence_read_bytes(media.file.path)
        for name in archive.namelist():
            content = archive.read(name)
            assert not looks_like_media(content), name
            assert raw[:64] not in content, name
            assert not any(t[:64] in content for t in thumbnails), name

    def test_revealing_a_contact_sheet_frame_is_not_viewing_the_file(
        self, tmp_path: Path, moderator: Any, lead: Any
    ) -> None:
        item = make_video_item(write_synthetic_video(tmp_path / "v.mp4", 8, seconds=3))
        media = item.media
        frame = media.frames.exclude(thumbnail="").first()
        Reveal.objects.create(
            media=media, frame=frame, case=item.case, user=moderator, reason="check one frame"
        )
        packet = packet_draft(
            cases=[item.case],
            destination=police(),
            priority="urgent",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        document = referral_document(packet)
        assert document["items"][0]["viewed_by_provider"] is False
        Reveal.objects.create(media=media, case=item.case, user=moderator, reason="the file")
        assert referral_document(packet)["items"][0]["viewed_by_provider"] is True

    def test_the_builder_refuses_binary_media_from_any_source(self) -> None:
        for data in (
            synthetic_jpeg(1, 32, 32),
            synthetic_png(1, 32, 32),
            b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20,
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        ):
            with pytest.raises(MediaInPacket):
                _refuse_media("x", data)


@pytest.mark.django_db
class DeterminismTests:
    def test_the_same_inputs_give_the_same_manifest(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        packet = submitted_packet(moderator, lead)
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
