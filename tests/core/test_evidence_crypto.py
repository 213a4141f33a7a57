"""Evidence encrypted at rest (core.evidence_crypto): the file format, master and data keys,
rotation, crypto-shredding, and the system check."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core import evidence_crypto as ec
from core.audit import SystemActor
from core.checks import check_evidence_master_keys
from core.models import AuditEvent, EvidenceKey

K1 = ec.master_key_line("k1")
K2 = ec.master_key_line("k2")
CHUNK = 64  # small chunks, so a few hundred bytes cover many chunks


@pytest.fixture
def k1(settings: Any) -> Iterator[None]:
    settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K1
    yield


def _encrypt(tmp_path: Path, data: bytes, name: str = "f") -> Path:
    """Encrypt `data` into a file, recording `name` as its storage name."""
    stem = name.replace("/", "_") or "unnamed"
    source = tmp_path / f"{stem}.plain"
    source.write_bytes(data)
    target = tmp_path / f"{stem}.enc"
    ec.encrypt_file(source, target, name=name, chunk_size=CHUNK)
    return target


def _payload(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


@pytest.mark.django_db
@pytest.mark.usefixtures("k1")
class RoundTripTests:
    @pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 7])
    def test_what_goes_in_comes_out_and_the_disk_holds_no_plaintext(
        self, tmp_path: Path, size: int
    ) -> None:
        data = _payload(size)
        path = _encrypt(tmp_path, data)
        raw = path.read_bytes()
        assert raw.startswith(ec.MAGIC) and oct(path.stat().st_mode & 0o777) == "0o600"
        assert ec.evidence_read_bytes(path) == data
        if size >= 16:
            assert data[:16] not in raw
        with ec.evidence_open(path) as reader:
            assert reader.size == size and reader.encrypted

    def test_any_byte_range_is_read_by_decrypting_only_its_chunks(self, tmp_path: Path) -> None:
        data = _payload(10 * CHUNK + 5)
        path = _encrypt(tmp_path, data)
        with ec.evidence_open(path) as reader:
            for start, length in [
                (0, 10),
                (CHUNK - 3, 10),
                (3 * CHUNK, CHUNK * 2),
                (len(data) - 4, 50),
            ]:
                reader.seek(start)
                assert reader.read(length) == data[start : start + length]
            assert reader.seek(-5, io.SEEK_END) == len(data) - 5
            assert reader.read() == data[-5:]
            reader.seek(len(data) + 10)
            assert reader.read(10) == b""

    def test_the_reader_has_no_file_descriptor_for_sendfile_to_bypass(self, tmp_path: Path) -> None:
        with (
            ec.evidence_open(_encrypt(tmp_path, b"x" * 100)) as reader,
            pytest.raises(io.UnsupportedOperation),
        ):
            reader.fileno()

    def test_a_file_stored_before_encryption_is_still_read(self, tmp_path: Path) -> None:
        legacy = tmp_path / "legacy.jpg"
        legacy.write_bytes(b"\xff\xd8\xff" + _payload(300))
        assert not ec.is_encrypted(legacy) and ec.file_key_ref(legacy) is None
        assert ec.evidence_read_bytes(legacy) == legacy.read_bytes()
        assert ec.evidence_digests(legacy).encrypted is False

    def test_each_file_has_its_own_data_key_wrapped_by_the_current_master_key(
        self, tmp_path: Path
    ) -> None:
        a, b = _encrypt(tmp_path, b"a" * 10, "a"), _encrypt(tmp_path, b"a" * 10, "b")
        ref_a, ref_b = ec.file_key_ref(a), ec.file_key_ref(b)
        assert ref_a != ref_b
        rows = EvidenceKey.objects.filter(pk__in=[ref_a, ref_b])
        assert {r.master_key_id for r in rows} == {"k1"} and {r.name for r in rows} == {"a", "b"}
        assert all(len(bytes(r.wrapped)) == 12 + 32 + 16 for r in rows)
        assert a.read_bytes()[ec.HEADER_SIZE :] != b.read_bytes()[ec.HEADER_SIZE :]

    def test_a_working_copy_for_decoders_is_deleted_when_done(
        self, tmp_path: Path, settings: Any
    ) -> None:
        data = _payload(1000)
        path = _encrypt(tmp_path, data)
        with ec.evidence_plaintext(path) as plain:
            assert plain.path.read_bytes() == data and plain.path != path
            assert plain.digests.sha256 == hashlib.sha256(data).hexdigest()
            work = plain.path
        assert not work.exists()
        with pytest.raises(RuntimeError), ec.evidence_plaintext(path) as plain:
            work = plain.path
            raise RuntimeError("decoder crashed")
        assert not work.exists()

    def test_a_large_file_streams_in_bounded_memory(self, tmp_path: Path) -> None:
        size = 24 * 1024 * 1024
        source = tmp_path / "big.plain"
        with open(source, "wb") as fh:
            for _ in range(size // (1024 * 1024)):
                fh.write(os.urandom(1024 * 1024))
        target = tmp_path / "big.enc"
        tracemalloc.start()
        try:
            ec.encrypt_file(source, target)
            digests = ec.evidence_digests(target)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert digests.size == size
        assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte file"


@pytest.mark.django_db
@pytest.mark.usefixtures("k1")
class TamperTests:
    def test_a_flipped_byte_fails_its_chunks_gcm_tag(self, tmp_path: Path) -> None:
        path = _encrypt(tmp_path, _payload(4 * CHUNK))
        raw = bytearray(path.read_bytes())
        raw[ec.HEADER_SIZE + 2 * (CHUNK + 16) + 5] ^= 1
        path.write_bytes(bytes(raw))
        with pytest.raises(ec.EvidenceCorrupt, match=r"chunk 2 .* fails authentication"):
            ec.evidence_read_bytes(path)

    def test_a_changed_header_fails_every_chunk(self, tmp_path: Path) -> None:
        path = _encrypt(tmp_path, _payload(100))
        raw = bytearray(path.read_bytes())
        raw[ec.HEADER_SIZE - 1] ^= 1  # the nonce prefix
        path.write_bytes(bytes(raw))
        with pytest.raises(ec.EvidenceCorrupt):
            ec.evidence_read_bytes(path)

    @pytest.mark.parametrize("cut", ["mid_chunk", "whole_last_chunk", "header", "all_chunks"])
    def test_a_truncated_file_is_refused(self, tmp_path: Path, cut: str) -> None:
        path = _encrypt(tmp_path, _payload(3 * CHUNK))
        raw = path.read_bytes()
        keep = {
            "mid_chunk": len(raw) - 10,
            "whole_last_chunk": ec.HEADER_SIZE + 2 * (CHUNK + 16),  # a clean chunk boundary
            "header": 20,
            "all_chunks": ec.HEADER_SIZE,
        }[cut]
        path.write_bytes(raw[:keep])
        with pytest.raises(ec.EvidenceCorrupt, match=r"truncated|fails authentication"):
            ec.evidence_read_bytes(path)

    def test_an_appended_chunk_is_refused(self, tmp_path: Path) -> None:
        path = _encrypt(tmp_path, _payload(2 * CHUNK))
        raw = path.read_bytes()
        path.write_bytes(raw + raw[ec.HEADER_SIZE : ec.HEADER_SIZE + CHUNK + 16])
        with pytest.raises(ec.EvidenceCorrupt):
            ec.evidence_read_bytes(path)

    def test_an_unknown_format_version_is_refused(self, tmp_path: Path) -> None:
        path = _encrypt(tmp_path, b"hello")
        raw = bytearray(path.read_bytes())
        raw[len(ec.MAGIC)] = 9
        path.write_bytes(bytes(raw))
        with pytest.raises(ec.EvidenceCorrupt, match="version 9"):
            ec.evidence_open(path)


@pytest.mark.django_db
class MasterKeyTests:
    def test_the_wrong_key_bytes_for_an_id_are_refused_clearly(
        self, tmp_path: Path, settings: Any
    ) -> None:
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K1
        path = _encrypt(tmp_path, b"evidence")
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = ec.master_key_line("k1")  # same id, new bytes
        with pytest.raises(ec.EvidenceKeyError, match="master key 'k1' does not unwrap"):
            ec.evidence_read_bytes(path)

    def test_a_master_key_that_is_not_configured_is_named(
        self, tmp_path: Path, settings: Any
    ) -> None:
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K1
        path = _encrypt(tmp_path, b"evidence")
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K2
        with pytest.raises(ec.EvidenceKeyError, match="'k1', which is not configured"):
            ec.evidence_read_bytes(path)

    def test_a_file_whose_key_row_is_gone_is_refused(self, tmp_path: Path, k1: None) -> None:
        path = _encrypt(tmp_path, b"evidence")
        EvidenceKey.objects.all().delete()
        with pytest.raises(ec.EvidenceKeyError, match="not in the database"):
            ec.evidence_read_bytes(path)

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("nocolon", "not 'id:base64key'"),
            ("k1:!!!", "not valid base64|bytes, not 32"),
            ("k1:" + "QUJD", "3 bytes, not 32"),
            (f"{K1},{K1}", "appears twice"),
        ],
    )
    def test_malformed_master_keys_are_refused_without_echoing_key_bytes(
        self, text: str, problem: str, settings: Any
    ) -> None:
        with pytest.raises(ValueError, match=problem) as caught:
            ec.parse_master_keys(text)
        assert K1.split(":")[1] not in str(caught.value)
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = text
        assert [m.id for m in check_evidence_master_keys(None)] == ["safeguard.E020"]

    def test_without_a_configured_key_a_generated_file_is_used_and_production_is_warned(
        self, tmp_path: Path, settings: Any
    ) -> None:
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = ""
        settings.SAFEGUARD_EVIDENCE_KEY_FILE = tmp_path / "keys" / "evidence.key"
        path = _encrypt(tmp_path, b"demo evidence")
        key_file = settings.SAFEGUARD_EVIDENCE_KEY_FILE
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert ec.evidence_read_bytes(path) == b"demo evidence"
        settings.DEBUG = False
        assert [m.id for m in check_evidence_master_keys(None)] == ["safeguard.W020"]
        settings.DEBUG = True
        assert check_evidence_master_keys(None) == []
        settings.DEBUG = False
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K1
        assert check_evidence_master_keys(None) == []

    def test_generate_prints_a_usable_entry(self, capsys: pytest.CaptureFixture[str]) -> None:
        call_command("rotate_evidence_keys", "--generate", "2027-01")
        line = capsys.readouterr().out.strip()
        (key,) = ec.parse_master_keys(line)
        assert key.id == "2027-01" and len(key.key) == 32 and repr(key) == "MasterKey('2027-01')"
        with pytest.raises(CommandError):
            call_command("rotate_evidence_keys", "--generate", "a:b")


@pytest.mark.django_db
class RotationTests:
    def test_rotation_rewraps_every_key_resumably_and_audited(
        self, tmp_path: Path, settings: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K1
        files = {n: _encrypt(tmp_path, _payload(100 + n), str(n)) for n in range(5)}
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = f"{K2},{K1}"  # k2 current, k1 retired
        new = _encrypt(tmp_path, b"after", "new")
        assert EvidenceKey.objects.get(pk=ec.file_key_ref(new)).master_key_id == "k2"

        call_command("rotate_evidence_keys", "--limit", "2", "--batch-size", "1")  # interrupted
        assert EvidenceKey.objects.filter(master_key_id="k1").count() == 3
        capsys.readouterr()
        call_command("rotate_evidence_keys", "--batch-size", "2")  # resumed: the rest
        assert "3 data key(s) re-wrapped under master key 'k2'; 0 still" in capsys.readouterr().out
        assert not EvidenceKey.objects.exclude(master_key_id="k2").exists()
        assert all(r.rewrapped_at for r in EvidenceKey.objects.exclude(pk=ec.file_key_ref(new)))
        events = AuditEvent.objects.filter(verb="evidence_keys.rewrapped")
        assert sum(e.data["count"] for e in events) == 5
        assert all(e.data["from"] == ["k1"] and e.data["to"] == "k2" for e in events)

        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K2  # k1 retired for good
        for n, path in files.items():
            assert ec.evidence_read_bytes(path) == _payload(100 + n)
        assert ec.evidence_read_bytes(new) == b"after"

    def test_rotation_stops_clearly_when_an_old_key_is_missing(
        self, tmp_path: Path, settings: Any
    ) -> None:
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K1
        _encrypt(tmp_path, b"x")
        settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K2  # k1 dropped before rotating
        with pytest.raises(CommandError, match="'k1', which is not configured"):
            call_command("rotate_evidence_keys")
        assert EvidenceKey.objects.get().master_key_id == "k1"  # nothing half-done


@pytest.mark.django_db
@pytest.mark.usefixtures("k1")
class ShredTests:
    def test_shredding_makes_the_file_and_every_copy_of_it_unreadable(self, tmp_path: Path) -> None:
        path = _encrypt(tmp_path, b"evidence bytes", "2026/11/abc")
        backup = tmp_path / "backup-copy"
        shutil.copy(path, backup)
        shredded = ec.evidence_keys_shred(names=["2026/11/abc"])
        assert shredded == [str(ec.file_key_ref(path))]
        row = EvidenceKey.objects.get()
        assert row.shredded_at is not None and bytes(row.wrapped) == b""
        for copy in (path, backup):
            with pytest.raises(ec.EvidenceKeyError, match="crypto-shredded"):
                ec.evidence_read_bytes(copy)
        # Re-wrapping skips it; shredding again is a no-op.
        assert ec.data_key_rewrap(row) is False
        assert ec.evidence_keys_shred(paths=[path]) == []

    def test_shredding_by_path_finds_the_key_in_the_header(self, tmp_path: Path) -> None:
        path = _encrypt(tmp_path, b"x", "")
        assert ec.evidence_keys_shred(paths=[path, tmp_path / "missing"]) == [
            str(ec.file_key_ref(path))
        ]


def test_rotation_service_is_a_no_op_when_every_key_is_current(db: None, settings: Any) -> None:
    settings.SAFEGUARD_EVIDENCE_MASTER_KEYS = K1
    result = ec.evidence_keys_rotate(actor=SystemActor("test"))
    assert (result.rewrapped, result.remaining, result.current) == (0, 0, "k1")
    assert not AuditEvent.objects.filter(verb="evidence_keys.rewrapped").exists()


def test_plaintext_left_in_staging_by_a_crash_is_swept_once_stale(settings: Any) -> None:
    staging = Path(settings.EVIDENCE_ROOT) / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    stale, fresh = staging / "work-old", staging / "up-new"
    stale.write_bytes(b"plaintext a crash left")
    fresh.write_bytes(b"an upload being validated")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert ec.evidence_staging_sweep(older_than_seconds=600) == 1
    assert not stale.exists() and fresh.exists()
