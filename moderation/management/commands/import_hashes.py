from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import SystemActor
from moderation.models import HashImport, HashList
from moderation.services.hashlists import (
    HashListError,
    hash_import_create,
    hash_import_run,
    hash_list_upsert,
)

ACTOR = SystemActor("manage.py import_hashes")


class Command(BaseCommand):
    help = (
        "Create or update a hash list from a CSV file of `hash,category,metadata` rows "
        "(metadata: a JSON object, optional). Invalid rows are reported with their line numbers; "
        "valid rows are kept. Re-importing the same file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--list", dest="name", required=True)
        parser.add_argument("--algorithm", required=True, choices=HashList.Algorithm.values)
        parser.add_argument("--threshold", type=int)
        parser.add_argument("--provider", choices=HashList.Provider.values)

    def handle(
        self,
        *args: Any,
        file: Path,
        name: str,
        algorithm: str,
        threshold: int | None,
        provider: str | None,
        **options: Any,
    ) -> None:
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        try:
            hash_list, created = hash_list_upsert(
                name=name, algorithm=algorithm, threshold=threshold, provider=provider, actor=ACTOR
            )
            imp = hash_import_create(
                hash_list=hash_list, content=content, filename=file.name, actor=ACTOR
            )
        except HashListError as exc:
            raise CommandError(str(exc)) from None
        imp = hash_import_run(import_id=imp.pk, actor=ACTOR)
        assert imp is not None
        hash_list.refresh_from_db()
        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} list {hash_list.name!r} ({hash_list.algorithm}, threshold "
            f"{hash_list.threshold}, version {hash_list.version})."
        )
        if imp.status == HashImport.Status.FAILED:
            raise CommandError(f"Import failed: {imp.error}")
        self.stdout.write(
            f"Added {imp.added}, updated {imp.updated}, {imp.invalid_count} invalid row(s)."
        )
        for row in imp.invalid[:50]:
            self.stderr.write(f"  line {row['line']}: {row['error']}")
        if imp.invalid_count > 50:
            self.stderr.write(f"  … and {imp.invalid_count - 50} more")
