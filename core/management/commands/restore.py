"""`manage.py restore ARCHIVE`: restore a backup (core.backup) into an empty environment, or
`--verify-only` to check an archive end to end without restoring it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.backup import BackupError, backup_restore, backup_unpack


class Command(BaseCommand):
    help = (
        "Restore a backup archive into an EMPTY environment (new database, empty evidence "
        "store and checkpoint directory; refused otherwise). Every checksum is verified before "
        "anything is written; the signing and evidence keys must be installed first. Reports "
        "evidence past retention. --verify-only checks the archive and changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--verify-only",
            action="store_true",
            help="decrypt and check every checksum, then discard (nothing is restored)",
        )
        parser.add_argument(
            "--staging-dir",
            type=Path,
            help="where to unpack before restoring (default: beside the evidence store; "
            "needs free space for the whole backup)",
        )

    def handle(
        self,
        *args: Any,
        archive: Path,
        verify_only: bool,
        staging_dir: Path | None,
        **options: Any,
    ) -> None:
        try:
            if verify_only:
                self._verify(archive, staging_dir)
            else:
                self._restore(archive, staging_dir)
        except BackupError as exc:
            raise CommandError(str(exc)) from None

    def _verify(self, archive: Path, staging_dir: Path | None) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="safeguard-verify-", dir=staging_dir))
        try:
            manifest = backup_unpack(archive=archive, staging=scratch / "unpacked")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.stdout.write(
            f"OK: {archive.name} — backup of {manifest['created_at']}, "
            f"{len(manifest['files'])} entries match the manifest's checksums."
        )

    def _restore(self, archive: Path, staging_dir: Path | None) -> None:
        result = backup_restore(archive=archive, staging_parent=staging_dir)
        manifest = result.manifest
        counts = manifest["counts"]
        self.stdout.write(
            f"Restored the backup of {manifest['created_at']}: "
            f"{sum(counts['tables'].values())} rows in {len(counts['tables'])} tables "
            f"(counts match), {counts['evidence_files']} evidence files, "
            f"{counts['checkpoints']} checkpoints."
        )
        for note in result.notes:
            self.stderr.write(f"WARNING: {note}")
        if result.pending_migrations:
            self.stdout.write(
                f"{result.pending_migrations} migration(s) of this code are newer than the "
                "backup: run `manage.py migrate` before starting the service."
            )
        self.stdout.write(
            f"Retention review: {len(result.past_retention)} evidence file(s) are past the "
            f"retention period and not under a legal hold; {result.active_holds} legal hold(s) "
            "are active. Holds placed and purges run after the backup are NOT in it: keep "
            "beat (the retention purge) stopped until a safety lead has re-entered later holds "
            "and reviewed this list."
        )
        if result.past_retention:
            shown = ", ".join(str(pk) for pk in result.past_retention[:50])
            more = " …" if len(result.past_retention) > 50 else ""
            self.stdout.write(f"  media past retention: {shown}{more}")
        self.stdout.write(
            "Next: verify_audit, verify_evidence, then `grant_app_role` for the application's "
            "database role (privileges are not restored)."
        )
