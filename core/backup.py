"""Backups and restores: the database, the evidence store and the signed audit checkpoints, in
one encrypted archive (core.backup_archive) with a manifest, restored only into an empty place.

Consistency — what one archive promises, and why it holds without stopping the service:

1. PostgreSQL: a REPEATABLE READ, READ ONLY transaction exports its snapshot
   (`pg_export_snapshot()`), and `pg_dump --snapshot` dumps exactly that snapshot. Every other
   read of the backup (row counts, the evidence file list, the audit head) runs inside the same
   transaction, so the dump, the manifest and the file list describe one instant.
   SQLite (the embedded default): the online backup API copies a consistent database, and the
   reads run against that copy.
2. Evidence files are write-once: intake writes the bytes and renames them into place before
   the row that names them commits (moderation.services.intake), and nothing rewrites them. So
   every file a snapshot row names exists, with the bytes it had then, when it is copied after
   the snapshot; files of uploads committed later are simply not in this backup (nor are their
   rows). The one exception is deletion: a retention purge that commits after the snapshot
   removes bytes the snapshot still names. Such a file is recorded in the manifest as
   `missing` with the reason (purged since the snapshot, or absent), never silently dropped.
3. Audit checkpoints are write-once too; only those whose seq is at or below the snapshot's
   sealed head are included, so the restored chain never looks truncated against a checkpoint
   written after the snapshot.

Keys: the archive is encrypted with SAFEGUARD_BACKUP_KEY. The installation's other keys (the
Ed25519 signing key, exchange credential keys, evidence encryption keys) are NOT in the
archive: the manifest records their ids (fingerprints), and a restore refuses to proceed when
the target's signing key is absent or differs. Keep keys in a secret store, separately from
backups — an archive plus its key must not be enough to forge packets or checkpoints.

Imports core.models, core.audit, core.checkpoints, core.signing and core.backup_archive. Other
apps' models are reached through the app registry (`apps.get_model`), never imported, so core
stays below them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO, Any

import django
from django.apps import apps
from django.conf import settings
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from . import signing
from .audit import SystemActor, audit_record
from .backup_archive import ArchiveError, ArchiveWriter, key_id, parse_key, read_entries
from .checkpoints import FileCheckpointStore
from .evidence_crypto import master_keys, master_keys_configured
from .models import AuditEvent, EvidenceKey

FORMAT = "safeguard-backup"
FORMAT_VERSION = 1
DATABASE_ENTRY = {"postgresql": "database/postgres.dump", "sqlite": "database/sqlite3.db"}
_CHECKPOINT_NAME = re.compile(r"^audit-checkpoint-(\d{12})\.json$")


class BackupError(Exception):
    """A backup or restore that cannot proceed; the message says why and what to do."""


# --- Keys -------------------------------------------------------------------------------------


def backup_keys() -> list[bytes]:
    """SAFEGUARD_BACKUP_KEY, parsed (the first encrypts; all decrypt, for rotation)."""
    keys = [parse_key(value) for value in settings.SAFEGUARD_BACKUP_KEY]
    if not keys:
        raise BackupError(
            'SAFEGUARD_BACKUP_KEY is not set. Generate one with `python -c "import base64, os; '
            'print(base64.b64encode(os.urandom(32)).decode())"` and keep it in your secret '
            "store, apart from the backups."
        )
    return keys


def _master_fingerprint(key: bytes) -> str:
    """A public id of a secret key (16 hex digits of a domain-separated SHA-256)."""
    return hashlib.sha256(b"safeguard-key-id\x00" + key).hexdigest()[:16]


def _secret_id(value: str) -> str:
    return _master_fingerprint(value.encode())


def _signing_key_fingerprint() -> str | None:
    # Checked before loading: core.signing generates a key when the file is missing, and a
    # backup or restore must never do that as a side effect.
    if not Path(settings.SAFEGUARD_SIGNING_KEY_FILE).is_file():
        return None
    return signing.fingerprint()


def key_references() -> dict[str, Any]:
    """Ids of every key this installation's data depends on — never the keys themselves."""
    references: dict[str, Any] = {
        "signing_key_sha256": _signing_key_fingerprint(),
        "exchange_key_ids": [_secret_id(k) for k in settings.SAFEGUARD_EXCHANGE_KEY],
    }
    # Evidence master keys (core.evidence_crypto): ids and fingerprints of the configured
    # ones. Not loaded when neither configured nor on disk (loading would generate one).
    if master_keys_configured() or Path(settings.SAFEGUARD_EVIDENCE_KEY_FILE).is_file():
        references["evidence_master_keys"] = [
            {"id": key.id, "sha256": _master_fingerprint(key.key)} for key in master_keys()
        ]
    else:
        references["evidence_master_keys"] = []
    return references


# --- Reading a snapshot -----------------------------------------------------------------------


@dataclass
class SnapshotFacts:
    """What the snapshot holds, read inside it (see the module docstring, point 1)."""

    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, bool] = field(default_factory=dict)  # name -> purged (bytes deleted)
    file_sources: dict[str, str] = field(default_factory=dict)  # name -> table.column
    audit_head: tuple[int, str] | None = None
    audit_unsealed: int = 0
    migrations: dict[str, str] = field(default_factory=dict)
    evidence_master_ids: list[str] = field(default_factory=list)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables_of_models() -> list[str]:
    tables = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        if model._meta.db_table not in tables:
            tables.append(model._meta.db_table)
    return sorted(tables)


def _read_snapshot(cursor: Any, existing: set[str]) -> SnapshotFacts:
    facts = SnapshotFacts()
    for table in _tables_of_models():
        if table in existing:
            cursor.execute(f"SELECT count(*) FROM {_q(table)}")  # noqa: S608 - model tables
            facts.counts[table] = int(cursor.fetchone()[0])
    for model in apps.get_models():
        table = model._meta.db_table
        if table not in existing:
            continue
        purged = "purged_at" in {f.name for f in model._meta.concrete_fields}
        for file_field in model._meta.concrete_fields:
            if not isinstance(file_field, models.FileField):
                continue
            column = file_field.column
            flag = "purged_at IS NOT NULL" if purged else "FALSE"
            cursor.execute(
                f"SELECT {_q(column)}, {flag} FROM {_q(table)} "  # noqa: S608 - model tables
                f"WHERE {_q(column)} IS NOT NULL AND {_q(column)} <> ''"
            )
            for name, is_purged in cursor.fetchall():
                facts.files[name] = bool(is_purged) or facts.files.get(name, False)
                facts.file_sources[name] = f"{table}.{column}"
    audit_table = AuditEvent._meta.db_table
    if audit_table in existing:
        cursor.execute(
            f"SELECT seq, hash FROM {_q(audit_table)} "  # noqa: S608 - model table
            "WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
        )
        row = cursor.fetchone()
        facts.audit_head = (int(row[0]), str(row[1])) if row else None
        cursor.execute(f"SELECT count(*) FROM {_q(audit_table)} WHERE seq IS NULL")  # noqa: S608
        facts.audit_unsealed = int(cursor.fetchone()[0])
    key_table = EvidenceKey._meta.db_table
    if key_table in existing:
        cursor.execute(
            f"SELECT DISTINCT master_key_id FROM {_q(key_table)} "  # noqa: S608 - model table
            "WHERE shredded_at IS NULL ORDER BY master_key_id"
        )
        facts.evidence_master_ids = [row[0] for row in cursor.fetchall()]
    if "django_migrations" in existing:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
        for app, name in cursor.fetchall():
            facts.migrations[app] = name  # the last applied per app
    return facts


def _libpq_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    """libpq environment for pg_dump/pg_restore: the password never appears on a command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    mapping = {"HOST": "PGHOST", "PORT": "PGPORT", "USER": "PGUSER", "PASSWORD": "PGPASSWORD"}
    for key, variable in mapping.items():
        if settings_dict.get(key):
            env[variable] = str(settings_dict[key])
    env["PGDATABASE"] = str(settings_dict["NAME"])
    options = settings_dict.get("OPTIONS") or {}
    for option in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        if options.get(option):
            env["PG" + option.upper()] = str(options[option])
    return env


def _tool_major(tool: str) -> int:
    if shutil.which(tool) is None:
        raise BackupError(
            f"{tool} is not installed: install the PostgreSQL client matching the server "
            "(Debian: postgresql-client-15)."
        )
    output = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"(\d+)(?:\.\d+)?", output.stdout)
    if match is None:
        raise BackupError(f"cannot read the version of {tool}: {output.stdout!r}")
    return int(match.group(1))


@contextlib.contextmanager
def _postgres_snapshot() -> Iterator[tuple[Any, str, int]]:
    """(cursor, snapshot id, server major version) of an open REPEATABLE READ transaction."""
    # The driver is imported only when the database is PostgreSQL (the embedded default never
    # loads it).
    import psycopg2
    from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

    params = connection.get_connection_params()
    conn = psycopg2.connect(**params)
    try:
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version_num')")
            snapshot_id, version_num = cursor.fetchone()
            yield cursor, snapshot_id, int(version_num) // 10000
    finally:
        conn.rollback()
        conn.close()


def _postgres_tables(cursor: Any) -> set[str]:
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {row[0] for row in cursor.fetchall()}


def _sqlite_tables(cursor: Any) -> set[str]:
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in cursor.fetchall()}


# --- Backup -----------------------------------------------------------------------------------


class _HashingSink:
    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    sha256: str
    size: int
    manifest: dict[str, Any]


def _safe_relative(name: str) -> PurePosixPath:
    """A stored name as a relative path that stays inside its root, or BackupError."""
    path = PurePosixPath(name)
    if (
        not name
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in path.parts)
        or "\\" in name
        or "\x00" in name
    ):
        raise BackupError(f"refusing an unsafe file name: {name!r}")
    return path


def _copy_evidence(writer: ArchiveWriter, facts: SnapshotFacts, manifest: dict[str, Any]) -> None:
    root = Path(settings.EVIDENCE_ROOT)
    for name in sorted(facts.files):
        if facts.files[name]:
            manifest["counts"]["evidence_purged"] += 1
            continue
        relative = _safe_relative(name)
        try:
            source = open(root / relative, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            manifest["missing"].append({"name": name, "reason": _why_missing(facts, name)})
            continue
        with source:
            manifest["files"][f"evidence/{name}"] = writer.add_stream(f"evidence/{name}", source)
        manifest["counts"]["evidence_files"] += 1
        manifest["counts"]["evidence_bytes"] += manifest["files"][f"evidence/{name}"]["size"]


def _why_missing(facts: SnapshotFacts, name: str) -> str:
    """Asked of the live database (outside the snapshot): was the file purged meanwhile?"""
    table, column = facts.file_sources[name].split(".")
    with connection.cursor() as cursor:
        try:
            cursor.execute(
                f"SELECT purged_at IS NOT NULL FROM {_q(table)} WHERE {_q(column)} = %s",  # noqa: S608
                [name],
            )
            row = cursor.fetchone()
        except Exception:  # noqa: BLE001 - a table without purged_at
            row = None
    if row and row[0]:
        return "purged by the retention service after the snapshot"
    return "absent from the evidence store (an integrity incident: investigate)"


def _copy_checkpoints(
    writer: ArchiveWriter, facts: SnapshotFacts, manifest: dict[str, Any]
) -> None:
    store = FileCheckpointStore(Path(settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR))
    head = facts.audit_head[0] if facts.audit_head else -1
    for name in store.names():
        match = _CHECKPOINT_NAME.match(name)
        if match is None or int(match.group(1)) > head:
            continue  # written after the snapshot: its event is not in this backup
        manifest["files"][f"checkpoints/{name}"] = writer.add_bytes(
            f"checkpoints/{name}", store.get(name)
        )
        manifest["counts"]["checkpoints"] += 1


def backup_create(*, destination: Path, actor: SystemActor | None = None) -> BackupResult:
    """Write one encrypted archive of this installation to `destination` (which must not exist),
    plus `<destination>.sha256` (the archive's checksum, checkable without the key).

    1. Open the snapshot (PostgreSQL: exported REPEATABLE READ; SQLite: backup API copy).
    2. Stream the database dump into the archive, then the evidence files and checkpoints the
       snapshot names, then the manifest. The archive is written to `<destination>.partial`
       and renamed only when complete, so a failed backup never looks like a good one.
    3. Record `backup.created` in the audit log (after the snapshot: the event is not in it).
    """
    keys = backup_keys()
    destination = Path(destination)
    if destination.exists():
        raise BackupError(f"{destination} already exists; backups are never overwritten")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    vendor = connection.vendor
    if vendor not in DATABASE_ENTRY:
        raise BackupError(f"backups support PostgreSQL and SQLite, not {vendor}")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": timezone.now().isoformat(),
        "versions": {
            "safeguard": _version("safeguard"),
            "django": django.__version__,
            "database": vendor,
        },
        "keys": {"backup_key_id": key_id(keys[0]), **key_references()},
        "counts": {
            "evidence_files": 0,
            "evidence_bytes": 0,
            "evidence_purged": 0,
            "checkpoints": 0,
        },
        "missing": [],
        "files": {},
    }
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _HashingSink(raw)
            writer = ArchiveWriter(sink, keys[0])  # type: ignore[arg-type]
            if vendor == "postgresql":
                _backup_postgres(writer, manifest)
            else:
                _backup_sqlite(writer, manifest)
            writer.add_bytes("manifest.json", json.dumps(manifest, indent=2).encode())
            writer.close()
            raw.flush()
            os.fsync(raw.fileno())
        archive_sha256 = sink.digest.hexdigest()
        sidecar = destination.with_name(destination.name + ".sha256")
        sidecar.write_text(f"{archive_sha256}  {destination.name}\n# size {sink.size}\n")
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    audit_record(
        actor=actor or SystemActor("backup command"),
        verb="backup.created",
        object_type="backup",
        object_id=archive_sha256[:16],
        data={
            "sha256": archive_sha256,
            "size": sink.size,
            "backup_key_id": manifest["keys"]["backup_key_id"],
            "counts": {k: v for k, v in manifest["counts"].items() if k != "tables"},
            "missing": len(manifest["missing"]),
        },
    )
    return BackupResult(destination, archive_sha256, sink.size, manifest)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _apply_facts(manifest: dict[str, Any], facts: SnapshotFacts) -> None:
    manifest["counts"]["tables"] = facts.counts
    manifest["audit"] = {
        "head_seq": facts.audit_head[0] if facts.audit_head else None,
        "head_hash": facts.audit_head[1] if facts.audit_head else None,
        "unsealed_events": facts.audit_unsealed,
    }
    manifest["migrations"] = facts.migrations
    # The master keys the snapshot's wrapped evidence keys need: a restore checks it has them.
    manifest["keys"]["evidence_master_ids_in_use"] = facts.evidence_master_ids


def _backup_postgres(writer: ArchiveWriter, manifest: dict[str, Any]) -> None:
    dump_major = _tool_major("pg_dump")
    with _postgres_snapshot() as (cursor, snapshot_id, server_major):
        if dump_major < server_major:
            raise BackupError(
                f"pg_dump {dump_major} cannot dump a PostgreSQL {server_major} server: install "
                f"postgresql-client-{server_major}"
            )
        facts = _read_snapshot(cursor, _postgres_tables(cursor))
        _apply_facts(manifest, facts)
        manifest["versions"].update(
            {"postgres_server": server_major, "pg_dump": dump_major, "snapshot": snapshot_id}
        )
        # The exporting transaction stays open until pg_dump has finished: the snapshot
        # exists only as long as it does.
        with tempfile.TemporaryFile() as errors:
            # stderr to a file, not a pipe: a full stderr pipe nobody reads would block pg_dump.
            process = subprocess.Popen(
                ["pg_dump", "--format=custom", f"--snapshot={snapshot_id}", "--no-password"],
                stdout=subprocess.PIPE,
                stderr=errors,
                env=_libpq_env(connection.settings_dict),
            )
            assert process.stdout is not None
            entry = DATABASE_ENTRY["postgresql"]
            try:
                manifest["files"][entry] = writer.add_stream(entry, process.stdout)
            finally:
                process.stdout.close()
                returncode = process.wait()
            if returncode != 0:
                errors.seek(0)
                raise BackupError(f"pg_dump failed: {errors.read().decode(errors='replace')}")
        _copy_evidence(writer, facts, manifest)
        _copy_checkpoints(writer, facts, manifest)


def _backup_sqlite(writer: ArchiveWriter, manifest: dict[str, Any]) -> None:
    connection.ensure_connection()
    with tempfile.TemporaryDirectory(prefix="safeguard-backup-") as scratch:
        copy_path = Path(scratch) / "copy.sqlite3"
        target = sqlite3.connect(copy_path)
        try:
            connection.connection.backup(target)  # type: ignore[union-attr]
            cursor = target.cursor()
            facts = _read_snapshot(cursor, _sqlite_tables(cursor))
        finally:
            target.close()
        _apply_facts(manifest, facts)
        manifest["versions"]["sqlite"] = sqlite3.sqlite_version
        entry = DATABASE_ENTRY["sqlite"]
        with open(copy_path, "rb") as source:
            manifest["files"][entry] = writer.add_stream(entry, source)
    _copy_evidence(writer, facts, manifest)
    _copy_checkpoints(writer, facts, manifest)


# --- Reading and verifying an archive ---------------------------------------------------------


def _check_sidecar(archive: Path) -> None:
    sidecar = archive.with_name(archive.name + ".sha256")
    if not sidecar.is_file():
        return
    lines = sidecar.read_text().splitlines()
    expected = lines[0].split()[0] if lines else ""
    size_line = next((line for line in lines if line.startswith("# size ")), None)
    actual_size = archive.stat().st_size
    if size_line is not None and int(size_line.removeprefix("# size ")) != actual_size:
        raise BackupError(
            f"{archive.name} is {actual_size} bytes but was written as "
            f"{size_line.removeprefix('# size ')}: the archive is truncated or altered "
            "(checked against its .sha256 file)"
        )
    digest = hashlib.sha256()
    with open(archive, "rb") as source:
        while block := source.read(1024 * 1024):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise BackupError(
            f"{archive.name} does not match its .sha256 file: the archive was altered"
        )


def backup_unpack(*, archive: Path, staging: Path) -> dict[str, Any]:
    """Decrypt `archive` into `staging` (a new, private directory) and check everything: the
    archive's .sha256 file when present, every chunk's authentication tag, every entry's
    SHA-256, and the manifest against the entries (none missing, none extra). Returns the
    manifest. Nothing outside `staging` is touched."""
    keys = backup_keys()
    archive = Path(archive)
    if not archive.is_file():
        raise BackupError(f"{archive}: no such archive")
    _check_sidecar(archive)
    staging.mkdir(mode=0o700, parents=True, exist_ok=False)
    seen: dict[str, dict[str, Any]] = {}
    manifest_bytes = b""
    try:
        with open(archive, "rb") as source:
            for name, blocks in read_entries(source, keys):
                if name in seen or (name == "manifest.json" and manifest_bytes):
                    raise BackupError(f"the archive holds {name} twice")
                if name == "manifest.json":
                    manifest_bytes = b"".join(blocks)
                    continue
                relative = _safe_relative(name)
                if relative.parts[0] not in ("database", "evidence", "checkpoints"):
                    raise BackupError(f"the archive holds an unexpected entry {name!r}")
                target = staging / relative
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    for block in blocks:
                        out.write(block)
                seen[name] = {"sha256": blocks.sha256, "size": blocks.size}
    except ArchiveError as exc:
        raise BackupError(f"{archive.name}: {exc}") from None
    if not manifest_bytes:
        raise BackupError(f"{archive.name} has no manifest (truncated?)")
    try:
        manifest = json.loads(manifest_bytes)
        listed: dict[str, dict[str, Any]] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise BackupError("the archive's manifest is unreadable") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError("the archive is not a Safeguard backup of a known format version")
    for name, expected in sorted(listed.items()):
        if name not in seen:
            raise BackupError(f"{name} is listed in the manifest but not in the archive")
        if seen[name] != {"sha256": expected["sha256"], "size": expected["size"]}:
            raise BackupError(f"{name} does not match its checksum in the manifest")
    extra = sorted(set(seen) - set(listed))
    if extra:
        raise BackupError(f"entries not in the manifest: {', '.join(extra[:5])}")
    return manifest


# --- Restore ----------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    manifest: dict[str, Any]
    pending_migrations: int = 0
    past_retention: list[int] = field(default_factory=list)
    active_holds: int = 0
    notes: list[str] = field(default_factory=list)


def _is_empty_dir(path: Path) -> bool:
    """No files anywhere below (empty folders, e.g. intake's staging, don't count)."""
    if not path.exists():
        return True
    return path.is_dir() and not any(p.is_file() or p.is_symlink() for p in path.rglob("*"))


def restore_preflight() -> None:
    """Refuse unless the target is empty: no tables in the database, nothing in the evidence
    store or the checkpoint directory. Reads only."""
    problems = []
    tables = connection.introspection.table_names()
    if tables:
        problems.append(
            f"the database {connection.settings_dict['NAME']!s} is not empty ({len(tables)} "
            "tables). Restore only into a new, empty database (createdb; do not run migrate "
            "first)"
        )
    evidence = Path(settings.EVIDENCE_ROOT)
    if not _is_empty_dir(evidence):
        problems.append(f"the evidence store {evidence} is not empty")
    checkpoints = Path(settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR)
    if not _is_empty_dir(checkpoints):
        problems.append(f"the checkpoint directory {checkpoints} is not empty")
    if problems:
        raise BackupError("Refusing to restore: " + "; ".join(problems) + ". Nothing was changed.")


def _check_keys(manifest: dict[str, Any]) -> None:
    expected = manifest.get("keys", {}).get("signing_key_sha256")
    if expected is None:
        return
    found = _signing_key_fingerprint()
    if found is None:
        raise BackupError(
            f"Refusing to restore: no signing key at {settings.SAFEGUARD_SIGNING_KEY_FILE}. "
            "Keys are not in backups: install the installation's Ed25519 key from your secret "
            f"store first (fingerprint {expected}). Nothing was changed."
        )
    if found != expected:
        raise BackupError(
            f"Refusing to restore: the signing key at {settings.SAFEGUARD_SIGNING_KEY_FILE} "
            f"(fingerprint {found}) is not the one this backup's packets and checkpoints were "
            f"signed with ({expected}). Nothing was changed."
        )


def _check_evidence_keys(manifest: dict[str, Any]) -> None:
    needed = manifest.get("keys", {}).get("evidence_master_ids_in_use") or []
    if not needed:
        return
    if not (master_keys_configured() or Path(settings.SAFEGUARD_EVIDENCE_KEY_FILE).is_file()):
        raise BackupError(
            "Refusing to restore: no evidence master keys are configured here, and the "
            f"backup's evidence is wrapped by {', '.join(needed)}. Set "
            "SAFEGUARD_EVIDENCE_MASTER_KEYS from your secret store first. Nothing was changed."
        )
    recorded = {k["id"]: k["sha256"] for k in manifest["keys"].get("evidence_master_keys", [])}
    here = {key.id: _master_fingerprint(key.key) for key in master_keys()}
    absent = [i for i in needed if i not in here]
    different = [i for i in needed if i in here and i in recorded and here[i] != recorded[i]]
    if absent or different:
        raise BackupError(
            "Refusing to restore: evidence master key(s) "
            + ", ".join(absent + different)
            + (" are not configured here" if absent else " differ from the backup's")
            + " (SAFEGUARD_EVIDENCE_MASTER_KEYS). Nothing was changed."
        )


def _restore_database(staging: Path, manifest: dict[str, Any]) -> None:
    vendor = manifest["versions"]["database"]
    if vendor != connection.vendor:
        raise BackupError(
            f"the backup holds a {vendor} database; this environment uses {connection.vendor}"
        )
    if vendor == "postgresql":
        restore_major = _tool_major("pg_restore")
        if restore_major < int(manifest["versions"]["pg_dump"]):
            raise BackupError(
                f"pg_restore {restore_major} cannot read a dump from pg_dump "
                f"{manifest['versions']['pg_dump']}: install a newer PostgreSQL client"
            )
        connection.close()
        result = subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--no-password",
                f"--dbname={connection.settings_dict['NAME']}",
                str(staging / DATABASE_ENTRY["postgresql"]),
            ],
            capture_output=True,
            env=_libpq_env(connection.settings_dict),
            check=False,
        )
        if result.returncode != 0:
            raise BackupError(
                "pg_restore failed (the database was left empty: it ran in one transaction): "
                + result.stderr.decode(errors="replace")
            )
    else:
        target = Path(connection.settings_dict["NAME"])
        connection.close()
        partial = target.with_name(target.name + ".restoring")
        shutil.copyfile(staging / DATABASE_ENTRY["sqlite"], partial)
        os.replace(partial, target)


def _place_files(staging: Path, manifest: dict[str, Any]) -> None:
    evidence_root = Path(settings.EVIDENCE_ROOT)
    for name in manifest["files"]:
        if not name.startswith("evidence/"):
            continue
        relative = _safe_relative(name.removeprefix("evidence/"))
        target = evidence_root / relative
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Same file system as the staging directory (which sits beside the store): a rename.
        shutil.move(staging / name, target)
    store = FileCheckpointStore(Path(settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR))
    for name in sorted(manifest["files"]):
        if name.startswith("checkpoints/"):
            store.put(name.removeprefix("checkpoints/"), (staging / name).read_bytes())


def _check_counts(manifest: dict[str, Any]) -> None:
    expected: dict[str, int] = manifest["counts"].get("tables", {})
    with connection.cursor() as cursor:
        for table, count in sorted(expected.items()):
            cursor.execute(f"SELECT count(*) FROM {_q(table)}")  # noqa: S608 - from the manifest
            found = int(cursor.fetchone()[0])
            if found != count:
                raise BackupError(
                    f"after restore, {table} holds {found} rows; the backup recorded {count}"
                )


def retention_review(result: RestoreResult) -> None:
    """Evidence the restored database still holds although its retention period has passed.

    A backup predates later purges (and their receipts) — and later legal holds. So after a
    restore, the retention purge would delete these files again at its next run, and it would
    also delete evidence that a hold placed after the backup should have preserved. The
    restore therefore only reports; the README says to keep beat stopped until a safety lead
    has re-entered holds placed since `created_at` and reviewed this list.
    """
    if not apps.is_installed("moderation"):
        return
    media_model = apps.get_model("moderation", "Media")
    hold_model = apps.get_model("moderation", "LegalHold")
    now = timezone.now()
    cutoff = now - timedelta(days=settings.SAFEGUARD_RETENTION_DAYS)
    held_cases = hold_model.objects.filter(released_at__isnull=True, expires_at__gt=now)
    result.active_holds = held_cases.count()
    result.past_retention = list(
        media_model.objects.filter(
            purged_at__isnull=True,
            item__case__status__in=["decided", "closed"],
            item__case__decided_at__lt=cutoff,
        )
        .exclude(item__case_id__in=held_cases.values("case_id"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def backup_restore(*, archive: Path, staging_parent: Path | None = None) -> RestoreResult:
    """Restore `archive` into this (empty) environment.

    1. Preflight: the database, evidence store and checkpoint directory must be empty.
    2. Unpack into a private staging directory beside the evidence store, verifying every
       checksum (core.backup.backup_unpack); the signing key must be the backup's.
    3. Restore the database (pg_restore in one transaction, or the SQLite file), move the
       evidence into place, write the checkpoints (write-once).
    4. Check each table's row count against the manifest, record `backup.restored` in the
       audit log, and review retention (see `retention_review`).
    """
    restore_preflight()
    evidence_root = Path(settings.EVIDENCE_ROOT)
    parent = Path(staging_parent) if staging_parent else evidence_root.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".safeguard-restore-", dir=parent)) / "unpacked"
    try:
        manifest = backup_unpack(archive=archive, staging=staging)
        _check_keys(manifest)
        _check_evidence_keys(manifest)
        restore_preflight()  # again: nothing may have arrived while the archive was checked
        _restore_database(staging, manifest)
        _place_files(staging, manifest)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    _check_counts(manifest)
    result = RestoreResult(manifest=manifest)
    executor = MigrationExecutor(connection)
    result.pending_migrations = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    retention_review(result)
    core_pending = [
        m
        for m, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())
        if m.app_label == "core"
    ]
    for missing in manifest.get("missing", []):
        result.notes.append(f"not in the backup: {missing['name']} ({missing['reason']})")
    if core_pending:
        # The audit table itself awaits a migration: record the restore after `migrate`.
        result.notes.append("the restore was not audited: run migrate first, then verify_audit")
        return result
    audit_record(
        actor=SystemActor("restore command"),
        verb="backup.restored",
        object_type="backup",
        object_id=manifest["created_at"][:64],
        data={
            "backup_created_at": manifest["created_at"],
            "backup_key_id": manifest["keys"]["backup_key_id"],
            "evidence_files": manifest["counts"]["evidence_files"],
            "checkpoints": manifest["counts"]["checkpoints"],
            "missing": len(manifest.get("missing", [])),
            "past_retention": len(result.past_retention),
            "active_holds": result.active_holds,
        },
    )
    return result
