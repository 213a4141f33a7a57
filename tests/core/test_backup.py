"""Backups and restore (core.backup, core.backup_archive, the backup/restore commands).

The drill backs up a seeded PostgreSQL instance, restores it into a new database, evidence
store and checkpoint directory through `manage.py restore` in a separate process (a fresh
environment, as an operator would run it), and proves with verify_audit, verify_evidence (or
the custody digests) and verify_packet that nothing was lost.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from core.backup_archive import ArchiveError, ArchiveWriter, key_id, read_entries
from core.checkpoints import checkpoint_write
from moderation.models import Media
from reports.models import ReferralPacket
from tests.moderation.factories import make_case
from tests.reports.factories import ready_packet

ROOT = Path(__file__).resolve().parents[2]


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def backup_key(settings: Any) -> str:
    key = _key()
    settings.SAFEGUARD_BACKUP_KEY = [key]
    return key


def _read_all(data: bytes, keys: list[bytes]) -> dict[str, bytes]:
    return {name: b"".join(blocks) for name, blocks in read_entries(io.BytesIO(data), keys)}


def _archive(entries: dict[str, bytes], key: bytes, chunk_size: int = 1024) -> bytes:
    out = io.BytesIO()
    writer = ArchiveWriter(out, key, chunk_size=chunk_size)
    for name, data in entries.items():
        writer.add_bytes(name, data)
    writer.close()
    return out.getvalue()


class ArchiveFormatTests:
    """The encrypted stream: round trip, and each kind of damage named for what it is."""

    entries = {"a": os.urandom(5000), "empty": b"", "b": b"x" * 3072}

    def test_entries_round_trip_across_chunk_boundaries(self) -> None:
        key = os.urandom(32)
        for chunk_size in (1024, 4096, 65536):
            data = _archive(self.entries, key, chunk_size)
            assert _read_all(data, [key]) == self.entries
            assert self.entries["a"] not in data  # encrypted

    def test_a_rotated_key_list_still_opens_an_archive_of_the_older_key(self) -> None:
        old, new = os.urandom(32), os.urandom(32)
        assert _read_all(_archive(self.entries, old), [new, old]) == self.entries

    def test_the_wrong_key_is_named_as_such_by_key_id(self) -> None:
        key, other = os.urandom(32), os.urandom(32)
        with pytest.raises(ArchiveError, match=f"wrong backup key.*{key_id(key)}"):
            _read_all(_archive(self.entries, key), [other])

    def test_a_changed_byte_fails_authentication(self) -> None:
        key = os.urandom(32)
        data = bytearray(_archive(self.entries, key))
        data[200] ^= 1
        with pytest.raises(ArchiveError, match="altered: chunk 0 fails authentication"):
            _read_all(bytes(data), [key])

    def test_a_stream_cut_at_a_chunk_boundary_is_reported_truncated(self) -> None:
        key = os.urandom(32)
        data = _archive(self.entries, key, chunk_size=1024)
        header = 54
        cut = data[: header + 2 * (1024 + 16)]
        with pytest.raises(ArchiveError, match="truncated: it ends without its final chunk"):
            _read_all(cut, [key])

    def test_a_stream_cut_inside_a_chunk_is_reported_truncated(self) -> None:
        key = os.urandom(32)
        data = _archive(self.entries, key, chunk_size=1024)
        with pytest.raises(ArchiveError, match="truncated"):
            _read_all(data[:-100], [key])

    def test_something_that_is_not_an_archive_is_refused(self) -> None:
        with pytest.raises(ArchiveError, match="not a Safeguard backup"):
            _read_all(b"PK\x03\x04 a zip", [os.urandom(32)])


# --- The drill ------------------------------------------------------------------------------


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database beside the test database (dropped afterwards)."""
    params = connection.get_connection_params()
    base = str(connection.settings_dict["NAME"]).removeprefix("test_")
    name = f"{base}_restore_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**{**params, "dbname": "postgres"})
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _database_url(name: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"


class Elsewhere:
    """A second environment: its own database, evidence store, checkpoint directory and keys
    (the keys copied over, as an operator installs them from the secret store)."""

    def __init__(self, root: Path, database: str, backup_key: str) -> None:
        self.root = root
        self.evidence = root / "evidence"
        self.checkpoints = root / "checkpoints"
        keys = root / "keys"
        keys.mkdir(parents=True)
        self.signing_key = keys / "signing.pem"
        shutil.copyfile(settings.SAFEGUARD_SIGNING_KEY_FILE, self.signing_key)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SAFEGUARD_", "EVIDENCE_", "REDIS_", "CELERY_"))
        }
        self.env.update(
            {
                "DATABASE_URL": _database_url(database),
                "DATABASE_CONN_MAX_AGE": "0",
                "SECRET_KEY": "test-only-secret-key-not-for-production",
                "DEBUG": "false",
                "LOG_LEVEL": "WARNING",
                "SAFEGUARD_VAR_DIR": str(root / "var"),
                "EVIDENCE_ROOT": str(self.evidence),
                "SAFEGUARD_AUDIT_CHECKPOINT_DIR": str(self.checkpoints),
                "SAFEGUARD_SIGNING_KEY_FILE": str(self.signing_key),
                "SAFEGUARD_BACKUP_KEY": backup_key,
            }
        )
        master = (getattr(settings, "SAFEGUARD_EVIDENCE_MASTER_KEYS", "") or "").strip()
        key_file = getattr(settings, "SAFEGUARD_EVIDENCE_KEY_FILE", None)
        if master:
            self.env["SAFEGUARD_EVIDENCE_MASTER_KEYS"] = master
        elif key_file is not None and Path(key_file).is_file():
            shutil.copyfile(key_file, keys / "evidence-master.key")
            self.env["SAFEGUARD_EVIDENCE_KEY_FILE"] = str(keys / "evidence-master.key")

    def manage(self, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **overrides},
            capture_output=True,
            text=True,
            timeout=600,
        )

    def tables(self) -> int:
        conn = psycopg2.connect(_database_url_dsn(self.env["DATABASE_URL"]))
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                return int(cursor.fetchone()[0])
        finally:
            conn.close()

    def files(self) -> list[Path]:
        if not self.evidence.exists():
            return []
        return [p for p in self.evidence.rglob("*") if p.is_file()]


def _database_url_dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


_CUSTODY_CHECK = """
import json
from pathlib import Path
from django.apps import apps
from django.conf import settings
from core.evidence_crypto import evidence_digests, evidence_read_bytes
import hashlib
root = Path(settings.EVIDENCE_ROOT)
media = apps.get_model("moderation", "Media").objects.filter(purged_at__isnull=True)
checked, bad = 0, []
for m in media:
    checked += 1
    if evidence_digests(root / m.file.name).sha256 != m.sha256:
        bad.append(m.pk)
packets = apps.get_model("reports", "ReferralPacket").objects.exclude(file="")
for p in packets:
    data = evidence_read_bytes(root / p.file.name)
    Path(__import__("os").environ["PACKET_OUT"], p.reference + ".zip").write_bytes(data)
    checked += 1
    stored = hashlib.sha256((root / p.file.name).read_bytes()).hexdigest()
    if p.sha256 not in (stored, hashlib.sha256(data).hexdigest()):
        bad.append(p.reference)
print(json.dumps({"checked": checked, "bad": bad}))
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class BackupRestoreDrillTests:
    def test_a_seeded_instance_restored_elsewhere_passes_all_three_verifiers(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        backup_key: str,
        fresh_database: str,
        tmp_path: Path,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        # 1. Seed: a decided case referred in a signed packet, an open case with an image,
        #    and a signed checkpoint of the audit chain.
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        make_case(kind="image", category="grooming")
        assert checkpoint_write() is not None
        media = dict(Media.objects.values_list("pk", "sha256"))
        assert len(media) == 2

        # 2. Back up.
        archive = tmp_path / "backups" / "nightly.sgbackup"
        out = StringIO()
        call_command("backup", str(archive), stdout=out)
        assert "Backup written" in out.getvalue()
        assert archive.is_file() and Path(f"{archive}.sha256").is_file()
        assert not Path(f"{archive}.partial").exists()

        elsewhere = Elsewhere(tmp_path / "elsewhere", fresh_database, backup_key)

        # 3. Bad input first, against the empty target: each is refused and changes nothing.
        tampered = tmp_path / "tampered.sgbackup"
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0x01
        tampered.write_bytes(bytes(data))
        truncated = tmp_path / "truncated.sgbackup"
        truncated.write_bytes(archive.read_bytes()[: len(data) - 5000])
        for bad, expected, overrides in (
            (tampered, "altered", {}),
            (truncated, "truncated", {}),
            (archive, "wrong backup key", {"SAFEGUARD_BACKUP_KEY": _key()}),
            (
                archive,
                "no signing key",
                {"SAFEGUARD_SIGNING_KEY_FILE": str(tmp_path / "absent.pem")},
            ),
            (
                archive,
                "evidence master key",
                {
                    "SAFEGUARD_EVIDENCE_MASTER_KEYS": "",
                    "SAFEGUARD_EVIDENCE_KEY_FILE": str(tmp_path / "absent.key"),
                },
            ),
        ):
            result = elsewhere.manage("restore", str(bad), **overrides)
            assert result.returncode != 0, result.stdout
            assert expected in result.stderr, result.stderr
            assert elsewhere.tables() == 0
            assert elsewhere.files() == []
        assert not (tmp_path / "absent.pem").exists()  # no key generated as a side effect

        # 4. Restore.
        result = elsewhere.manage("restore", str(archive))
        assert result.returncode == 0, result.stderr
        assert "Restored the backup" in result.stdout
        assert "Retention review: 0 evidence file(s)" in result.stdout
        manifest = json.loads(_manifest(archive, backup_key))
        assert manifest["keys"]["evidence_master_ids_in_use"]  # encrypted at rest: keys needed
        assert len(elsewhere.files()) == manifest["counts"]["evidence_files"] == 3
        assert manifest["counts"]["checkpoints"] >= 1

        # 5. Prove it: the audit chain and its signed checkpoints…
        audit = elsewhere.manage("verify_audit")
        assert audit.returncode == 0, audit.stderr
        assert "Audit chain intact" in audit.stdout
        assert f"{manifest['counts']['checkpoints']} signed checkpoint(s) match" in audit.stdout

        # …every evidence file against its custody record, by verify_evidence and directly…
        packets_out = tmp_path / "packets"
        packets_out.mkdir()
        custody = elsewhere.manage("shell", "-c", _CUSTODY_CHECK, PACKET_OUT=str(packets_out))
        assert custody.returncode == 0, custody.stderr
        report = json.loads(custody.stdout.strip().splitlines()[-1])
        assert report == {"checked": 3, "bad": []}
        evidence = elsewhere.manage("verify_evidence")
        assert evidence.returncode == 0, evidence.stdout + evidence.stderr
        assert "0 problem(s)" in evidence.stdout

        # …and the signed packet, with the restored installation's key.
        restored_zip = packets_out / f"{packet.reference}.zip"
        verified = elsewhere.manage("verify_packet", str(restored_zip))
        assert verified.returncode == 0, verified.stderr
        assert "signature is valid" in verified.stdout

        # The same custody records, the restore audited in the restored log.
        conn = psycopg2.connect(_database_url_dsn(elsewhere.env["DATABASE_URL"]))
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT id, sha256 FROM moderation_media")
            assert dict(cursor.fetchall()) == media
            cursor.execute("SELECT sha256 FROM reports_referralpacket")
            assert [row[0] for row in cursor.fetchall()] == [packet.sha256]
            cursor.execute("SELECT count(*) FROM core_auditevent WHERE verb = 'backup.restored'")
            assert cursor.fetchone()[0] == 1
        conn.close()

        # 6. A second restore over the now non-empty environment is refused.
        again = elsewhere.manage("restore", str(archive))
        assert again.returncode != 0
        assert "is not empty" in again.stderr

    def test_the_backup_is_audited_and_excludes_checkpoints_written_after_its_snapshot(
        self, moderator: Any, backup_key: str, tmp_path: Path
    ) -> None:
        make_case(kind="image", category="grooming")
        checkpoint_write()
        archive = tmp_path / "b.sgbackup"
        call_command("backup", str(archive), stdout=StringIO())
        manifest = json.loads(_manifest(archive, backup_key))
        assert manifest["counts"]["checkpoints"] == 1
        assert manifest["counts"]["evidence_files"] == 1
        assert manifest["audit"]["head_seq"] is not None
        assert manifest["keys"]["signing_key_sha256"]
        assert backup_key not in json.dumps(manifest)
        assert manifest["counts"]["tables"]["moderation_media"] == 1
        from core.models import AuditEvent

        assert AuditEvent.objects.filter(verb="backup.created").count() == 1
        # The backup.created event (after the snapshot) is not in the backup's counts.
        assert manifest["counts"]["tables"]["core_auditevent"] < AuditEvent.objects.count()


def _manifest(archive: Path, key: str) -> bytes:
    from core.backup_archive import parse_key

    with open(archive, "rb") as source:
        for name, blocks in read_entries(source, [parse_key(key)]):
            data = b"".join(blocks)
            if name == "manifest.json":
                return data
    raise AssertionError("no manifest")


# --- Bad input on this (non-empty) environment ---------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RestoreRefusalTests:
    @pytest.fixture
    def archive(self, backup_key: str, tmp_path: Path) -> Path:
        make_case(kind="image", category="grooming")
        path = tmp_path / "b.sgbackup"
        call_command("backup", str(path), stdout=StringIO())
        return path

    def test_a_restore_over_a_non_empty_database_is_refused_and_changes_nothing(
        self, archive: Path
    ) -> None:
        before = sorted(p for p in Path(settings.EVIDENCE_ROOT).rglob("*") if p.is_file())
        counts = Media.objects.count(), ReferralPacket.objects.count()
        with pytest.raises(CommandError, match=r"Refusing to restore: the database .* not empty"):
            call_command("restore", str(archive), stdout=StringIO())
        assert sorted(p for p in Path(settings.EVIDENCE_ROOT).rglob("*") if p.is_file()) == before
        assert (Media.objects.count(), ReferralPacket.objects.count()) == counts

    def test_verify_only_accepts_a_good_archive(self, archive: Path) -> None:
        out = StringIO()
        call_command("restore", str(archive), "--verify-only", stdout=out)
        assert "entries match the manifest's checksums" in out.getvalue()

    def test_a_wrong_backup_key_is_refused_by_key_id(
        self, archive: Path, settings: Any, backup_key: str
    ) -> None:
        settings.SAFEGUARD_BACKUP_KEY = [_key()]
        with pytest.raises(CommandError, match="wrong backup key"):
            call_command("restore", str(archive), "--verify-only", stdout=StringIO())

    def test_a_tampered_archive_is_refused_by_its_checksum_file_and_by_its_tags(
        self, archive: Path
    ) -> None:
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0x80
        archive.write_bytes(bytes(data))
        with pytest.raises(CommandError, match=r"does not match its \.sha256 file"):
            call_command("restore", str(archive), "--verify-only", stdout=StringIO())
        Path(f"{archive}.sha256").unlink()  # a copy that travelled without its checksum file
        with pytest.raises(CommandError, match="altered"):
            call_command("restore", str(archive), "--verify-only", stdout=StringIO())

    def test_a_truncated_archive_is_refused(self, archive: Path) -> None:
        archive.write_bytes(archive.read_bytes()[:-3000])
        with pytest.raises(CommandError, match="truncated"):
            call_command("restore", str(archive), "--verify-only", stdout=StringIO())
        Path(f"{archive}.sha256").unlink()
        with pytest.raises(CommandError, match="truncated"):
            call_command("restore", str(archive), "--verify-only", stdout=StringIO())

    def test_no_backup_key_is_a_clear_error(self, settings: Any, tmp_path: Path) -> None:
        settings.SAFEGUARD_BACKUP_KEY = []
        with pytest.raises(CommandError, match="SAFEGUARD_BACKUP_KEY is not set"):
            call_command("backup", str(tmp_path / "x.sgbackup"), stdout=StringIO())
        assert not (tmp_path / "x.sgbackup").exists()

    def test_an_existing_destination_is_never_overwritten(self, archive: Path) -> None:
        before = archive.read_bytes()
        with pytest.raises(CommandError, match="already exists"):
            call_command("backup", str(archive), stdout=StringIO())
        assert archive.read_bytes() == before


# --- The embedded default (SQLite) ---------------------------------------------------------------


def _embedded(var_dir: Path, *args: str, key: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "SAFEGUARD_", "EVIDENCE_"))
        and k != "SECRET_KEY"
    }
    env.update(
        {
            "DEBUG": "true",
            "SAFEGUARD_VAR_DIR": str(var_dir),
            "SAFEGUARD_BACKUP_KEY": key,
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


_SEED = (
    "from tests.moderation.factories import make_case; from core.checkpoints import "
    "checkpoint_write; make_case(kind='image', category='grooming'); checkpoint_write()"
)


class EmbeddedBackupTests:
    def test_an_embedded_instance_backs_up_and_restores_into_a_new_var_directory(
        self, tmp_path: Path
    ) -> None:
        key = _key()
        source, target = tmp_path / "source", tmp_path / "target"
        for step in (["migrate", "--noinput"], ["shell", "-c", _SEED]):
            result = _embedded(source, *step, key=key)
            assert result.returncode == 0, result.stderr
        archive = tmp_path / "embedded.sgbackup"
        result = _embedded(source, "backup", str(archive), key=key)
        assert result.returncode == 0, result.stderr
        assert "1 evidence files" in result.stdout
        # The keys come from the secret store, not the backup.
        shutil.copytree(source / "keys", target / "keys")
        result = _embedded(target, "restore", str(archive), key=key)
        assert result.returncode == 0, result.stderr
        audit = _embedded(target, "verify_audit", key=key)
        assert audit.returncode == 0, audit.stderr
        assert "1 signed checkpoint(s) match" in audit.stdout
        custody = _embedded(
            target,
            "shell",
            "-c",
            "from pathlib import Path; from django.conf import settings; "
            "from core.evidence_crypto import evidence_digests; "
            "from moderation.models import Media; m = Media.objects.get(); "
            "print(evidence_digests(Path(settings.EVIDENCE_ROOT) / m.file.name).sha256 "
            "== m.sha256)",
            key=key,
        )
        assert custody.stdout.strip().endswith("True"), custody.stdout + custody.stderr
