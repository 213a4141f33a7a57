"""Evidence at rest through the whole workflow: intake writes only ciphertext, hashing and the
audited media view see the plaintext, legacy plaintext files are encrypted and still served,
the purge crypto-shreds, and verification finds what is wrong."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from core.audit import SystemActor
from core.evidence_crypto import (
    MAGIC,
    EvidenceKeyError,
    evidence_read_bytes,
    file_key_ref,
    is_encrypted,
)
from core.models import AuditEvent, EvidenceKey
from moderation.media.synthetic import write_synthetic_video
from moderation.models import Media
from moderation.services.evidence import evidence_encrypt_legacy, evidence_verify
from moderation.services.retention import media_delete
from tests.conftest import client_for
from tests.moderation.factories import (
    make_claimed_image_case,
    make_item,
    make_video_item,
    reveal_in_console,
)

ACTOR = SystemActor("test")
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"ftyp", b"RIFF", b"\x1aE\xdf\xa3")


def _evidence_files() -> list[Path]:
    root = Path(settings.EVIDENCE_ROOT)
    return [p for p in root.rglob("*") if p.is_file()]


def _decrypt_in_place(path: Path) -> bytes:
    """Turn a stored file back into a pre-encryption (legacy) plaintext file."""
    data = evidence_read_bytes(path)
    path.write_bytes(data)
    return data


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("ev") / "v.mp4", 5, seconds=4)


@pytest.mark.django_db
class AtRestTests:
    def test_intake_leaves_no_plaintext_on_disk_and_hashing_still_works(
        self, moderator: Any
    ) -> None:
        _, media = make_claimed_image_case(moderator)
        plain = evidence_read_bytes(media.file.path)
        assert hashlib.sha256(plain).hexdigest() == media.sha256
        assert media.hash_status == "done" and media.pdq and media.md5
        assert media.md5 == hashlib.md5(plain).hexdigest()  # noqa: S324
        files = _evidence_files()
        assert files == [Path(media.file.path)], "only the encrypted file: no staging leftovers"
        raw = files[0].read_bytes()
        assert raw.startswith(MAGIC)
        assert not any(sig in raw for sig in SIGNATURES[:3]) and plain[:64] not in raw
        key = EvidenceKey.objects.get(pk=file_key_ref(media.file.path))
        assert key.name == media.file.name and key.shredded_at is None

    def test_video_frames_and_contact_sheet_thumbnails_are_encrypted_too(self, video: Path) -> None:
        media = make_video_item(video).media
        assert media.hash_status == "done", media.hash_error
        thumbnails = [f for f in media.frames.all() if f.thumbnail]
        assert thumbnails
        for frame in thumbnails:
            assert is_encrypted(frame.thumbnail.path)
            assert evidence_read_bytes(frame.thumbnail.path).startswith(b"\xff\xd8")
        raw = Path(media.file.path).read_bytes()
        assert raw.startswith(MAGIC) and b"ftyp" not in raw[:4096]
        names = {f.name for f in _evidence_files()}
        assert not [n for n in names if n.startswith("work-")], "a decrypted working copy left"

    def test_the_media_view_streams_plaintext_from_ciphertext(self, moderator: Any) -> None:
        case, media = make_claimed_image_case(moderator)
        client = client_for(moderator)
        url = reveal_in_console(client, case, media).json()["url"]
        response = client.get(url)
        body = b"".join(response.streaming_content)
        assert response.status_code == 200 and body == evidence_read_bytes(media.file.path)
        assert int(response["Content-Length"]) == media.size == len(body)
        part = client.get(url, HTTP_RANGE="bytes=10-5000")
        assert part.status_code == 206 and part.content == body[10:5001]

    def test_a_file_stored_before_encryption_is_still_served_and_hashed(
        self, moderator: Any
    ) -> None:
        case, media = make_claimed_image_case(moderator)
        plain = _decrypt_in_place(Path(media.file.path))
        client = client_for(moderator)
        url = reveal_in_console(client, case, media).json()["url"]
        assert b"".join(client.get(url).streaming_content) == plain

    def test_a_tampered_ciphertext_is_withheld_and_audited(self, moderator: Any) -> None:
        case, media = make_claimed_image_case(moderator)
        path = Path(media.file.path)
        raw = bytearray(path.read_bytes())
        raw[100] ^= 0xFF
        path.write_bytes(bytes(raw))
        client = client_for(moderator)
        url = reveal_in_console(client, case, media).json()["url"]
        assert client.get(url).status_code == 404
        event = AuditEvent.objects.get(verb="media.custody_mismatch")
        assert "fails authentication" in event.data["problem"]


@pytest.mark.django_db
class LegacyEncryptionTests:
    def test_encrypt_evidence_encrypts_legacy_files_in_place_audited_and_idempotent(
        self,
        moderator: Any,
        video: Path,
        capsys: pytest.CaptureFixture[str],
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        _, image = make_claimed_image_case(moderator)
        clip = make_video_item(video).media
        legacy = [Path(image.file.path), Path(clip.file.path)]
        legacy += [Path(f.thumbnail.path) for f in clip.frames.all() if f.thumbnail]
        plaintexts = {p: _decrypt_in_place(p) for p in legacy}
        assert not any(is_encrypted(p) for p in legacy)

        # Each file's plaintext is replaced only once its key and audit event are committed.
        with django_capture_on_commit_callbacks(execute=True):
            call_command("encrypt_evidence")
        assert f"{len(legacy)} file(s) encrypted" in capsys.readouterr().out
        for path, plain in plaintexts.items():
            assert is_encrypted(path) and evidence_read_bytes(path) == plain
        assert AuditEvent.objects.filter(verb="media.encrypted_at_rest").count() == len(legacy)
        assert not [p for p in _evidence_files() if p.name.startswith(".enc-")]

        call_command("encrypt_evidence")
        assert f"0 file(s) encrypted; {len(legacy)} already encrypted" in capsys.readouterr().out
        call_command("verify_evidence")

    def test_a_legacy_file_that_breaks_custody_is_left_as_it_is_and_reported(
        self, moderator: Any
    ) -> None:
        _, media = make_claimed_image_case(moderator)
        path = Path(media.file.path)
        path.write_bytes(b"\xff\xd8\xff not what was received")
        with pytest.raises(CommandError, match="1 file"):
            call_command("encrypt_evidence")
        assert path.read_bytes() == b"\xff\xd8\xff not what was received"
        run = evidence_encrypt_legacy(actor=ACTOR)
        assert run.encrypted == 0 and "custody says" in run.refused[0]


@pytest.mark.django_db
class VerifyTests:
    def test_verify_evidence_passes_a_clean_store(
        self, moderator: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        make_claimed_image_case(moderator)
        call_command("verify_evidence")
        assert "1 evidence file(s) checked: 1 encrypted, 0 plaintext, 0 problem(s)" in (
            capsys.readouterr().out
        )

    def test_verify_evidence_names_a_corrupted_a_missing_and_a_plaintext_file(
        self, moderator: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        files = [make_item(kind="image").media for _ in range(4)]
        corrupt, missing, plaintext, good = files
        raw = bytearray(Path(corrupt.file.path).read_bytes())
        raw[-3] ^= 1
        Path(corrupt.file.path).write_bytes(bytes(raw))
        Path(missing.file.path).unlink()
        _decrypt_in_place(Path(plaintext.file.path))
        with pytest.raises(CommandError, match="4 evidence file"):
            call_command("verify_evidence")
        err = capsys.readouterr().err
        assert f"media {corrupt.pk}: chunk 0" in err and "fails authentication" in err
        assert f"media {missing.pk}: the file is missing" in err
        assert f"media {plaintext.pk}: stored in plaintext" in err
        assert f"media {good.pk}" not in err
        report = evidence_verify(allow_plaintext=True)
        assert len(report.problems) == 2 and report.plaintext == 1

    def test_a_file_whose_plaintext_no_longer_matches_custody_is_named(
        self, moderator: Any
    ) -> None:
        _, media = make_claimed_image_case(moderator)
        Media.objects.filter(pk=media.pk).update(sha256="0" * 64)
        report = evidence_verify()
        assert not report.ok and "custody says 000" in report.problems[0]


@pytest.mark.django_db
class CryptoShredTests:
    def test_the_purge_destroys_the_data_keys_so_a_backup_copy_is_unreadable(
        self,
        moderator: Any,
        video: Path,
        tmp_path: Path,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        media = make_video_item(video).media
        paths = [Path(media.file.path)]
        paths += [Path(f.thumbnail.path) for f in media.frames.all() if f.thumbnail]
        backups = []
        for n, path in enumerate(paths):
            backups.append(tmp_path / f"backup-{n}")
            shutil.copy(path, backups[-1])
        refs = {str(file_key_ref(p)) for p in paths}
        with django_capture_on_commit_callbacks(execute=True):
            receipt = media_delete(media=media, actor=ACTOR, reason="retention test")
        assert not any(p.exists() for p in paths)
        event = AuditEvent.objects.get(verb="media.purged")
        assert set(event.data["keys_shredded"]) == refs and event.data["receipt"] == receipt.pk
        assert set(receipt.keys_shredded) == refs  # the receipt itself records the shredding
        assert not EvidenceKey.objects.filter(pk__in=refs, shredded_at__isnull=True).exists()
        for backup in backups:
            with pytest.raises(EvidenceKeyError, match="crypto-shredded"):
                evidence_read_bytes(backup)
        assert evidence_verify().ok

    def test_verify_flags_a_purged_media_whose_key_survived(self, moderator: Any) -> None:
        _, media = make_claimed_image_case(moderator)
        media_delete(media=media, actor=ACTOR, reason="retention test")  # bytes unlinked later
        EvidenceKey.objects.update(shredded_at=None, wrapped=b"x")
        report = evidence_verify()
        assert report.problems == [f"media {media.pk}: purged, but its data key was not shredded"]
