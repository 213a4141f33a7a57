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
from moderation.media.synthetic import synthetic_jpeg, synthetic_png, write_synthetic_video
from moderation.media.video import hash_video, vpdq_format
from moderation.models import Media, Reveal
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from reports.builder import (
    MediaInPacket,
    _refuse_media,
    build_packet_zip,
    looks_like_media,
    referral_document,
)
from reports.builder import validate_referral as schema_validate
from reports.models import Destination, ReferralPacket
from reports.packets import PacketError, packet_draft
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_video_item
from tests.reports.factories import drafted_packet, submitted_packet

from .factories import download, police, ready_packet


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
            e["action"] for e in custody
        }

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

    def test_the_nca_packet_covers_the_schedule_1_headings(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        nca = Destination.objects.get(kind="nca_ceop")
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks, nca)
        archive = zipfile.ZipFile(io.BytesIO(download(client_for(lead), packet)))
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
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks, ncmec)
        archive = zipfile.ZipFile(io.BytesIO(download(client_for(lead), packet)))
        xml = archive.read("cybertipline.xml").decode()
        assert "<fileViewedByEsp>true</fileViewedByEsp>" in xml and "SHA256" in xml


@pytest.mark.django_db
class NoImagesTests:
    def test_no_file_of_a_built_packet_is_an_image_or_video(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        raw = Path(Media.objects.get().file.path).read_bytes()
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
        thumbnails = [Path(f.thumbnail.path).read_bytes() for f in media.frames.all()]
        raw = Path(media.file.path).read_bytes()
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
