"""`manage.py backup DEST`: one encrypted, consistent archive of the database, the evidence
store and the signed audit checkpoints (core.backup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.backup import BackupError, backup_create


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump of an exported snapshot, or SQLite's backup API), the "
        "evidence files that snapshot names and the audit checkpoints it covers into one "
        "AES-256-GCM archive (key: SAFEGUARD_BACKUP_KEY) with a manifest of SHA-256 checksums, "
        "plus DEST.sha256. DEST may be a directory (a timestamped name is chosen)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", type=Path)

    def handle(self, *args: Any, destination: Path, **options: Any) -> None:
        if destination.is_dir():
            destination = destination / f"safeguard-{timezone.now():%Y%m%dT%H%M%SZ}.sgbackup"
        try:
            result = backup_create(destination=destination)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        counts = result.manifest["counts"]
        for missing in result.manifest["missing"]:
            self.stderr.write(f"WARNING: not backed up: {missing['name']} ({missing['reason']})")
        self.stdout.write(
            f"Backup written: {result.path} ({result.size} bytes, sha256 {result.sha256}); "
            f"{sum(counts['tables'].values())} rows in {len(counts['tables'])} tables, "
            f"{counts['evidence_files']} evidence files ({counts['evidence_bytes']} bytes), "
            f"{counts['checkpoints']} checkpoints; encrypted with backup key id "
            f"{result.manifest['keys']['backup_key_id']}."
        )
