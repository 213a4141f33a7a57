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
        "Create or update a hash list from files. CSV (`hash,category,metadata` rows, metadata a "
        "JSON object, optional) for image and exact lists; for --algorithm vpdq, Meta's vpdq text "
        "files (`frame,quality,pdq,timestamp` lines, one video per file, named after it) or JSON "
        "lines (one video per line). Invalid rows are reported with their line numbers; valid "
        "rows are kept. Re-importing the same file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--list", dest="name", required=True)
        parser.add_argument("--algorithm", required=True, choices=HashList.Algorithm.values)
        parser.add_argument("--threshold", type=int)
        parser.add_argument("--provider", choices=HashList.Provider.values)
        parser.add_argument(
            "--category", default="", help="vpdq text files: the category of every video"
        )
        parser.add_argument(
            "--format",
            dest="fmt",
            choices=HashImport.Format.values,
            default=HashImport.Format.CSV,
            help="csv (hash,category,metadata), signals (python-threatexchange/HMA signal "
            "files: '<signal type> <hash>' lines) or jsonl (one entry per line, several hashes "
            "per entry allowed). A vpdq list reads vpdq text or JSON lines, told apart by content "
            "whatever this says",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="make the list equal the file: its entries absent from the file are withdrawn "
            "(matches already made stay in case history, marked withdrawn)",
        )

    def handle(
        self,
        *args: Any,
        files: list[Path],
        name: str,
        algorithm: str,
        threshold: int | None,
        provider: str | None,
        category: str,
        fmt: str,
        sync: bool,
        **options: Any,
    ) -> None:
        if len(files) > 1 and algorithm != HashList.Algorithm.VPDQ:
            raise CommandError("Several files are for vpdq lists (one video per file).")
        try:
            hash_list, created = hash_list_upsert(
                name=name, algorithm=algorithm, threshold=threshold, provider=provider, actor=ACTOR
            )
        except HashListError as exc:
            raise CommandError(str(exc)) from None
        verb = "Created" if created else "Updated"
        if sync and len(files) > 1:
            raise CommandError("--sync takes one file: the whole list.")
        imports = [self._import(hash_list, file, category, fmt, sync) for file in files]
        hash_list.refresh_from_db()
        self.stdout.write(
            f"{verb} list {hash_list.name!r} ({hash_list.algorithm}, threshold "
            f"{hash_list.threshold}, version {hash_list.version})."
        )
        failed = [imp for imp in imports if imp.status == HashImport.Status.FAILED]
        for file, imp in zip(files, imports, strict=True):
            if imp.status == HashImport.Status.FAILED:
                self.stderr.write(f"{file}: import failed: {imp.error}")
                continue
            if len(files) > 1:
                self.stdout.write(f"{file.name}:")
            self.stdout.write(
                f"Added {imp.added}, updated {imp.updated}, {imp.invalid_count} invalid row(s)"
                + (f", {imp.withdrawn} withdrawn" if imp.sync else "")
                + f" ({imp.get_status_display().lower()})."
            )
            for row in imp.invalid[:50]:
                self.stderr.write(f"  line {row['line']}: {row['error']}")
            if imp.invalid_count > 50:
                self.stderr.write(f"  … and {imp.invalid_count - 50} more")
        if failed:
            raise CommandError(f"Import failed: {failed[0].error}")

    def _import(
        self, hash_list: HashList, file: Path, category: str, fmt: str, sync: bool
    ) -> HashImport:
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        try:
            imp = hash_import_create(
                hash_list=hash_list,
                content=content,
                filename=file.name,
                actor=ACTOR,
                category=category,
                fmt=fmt,
                sync=sync,
            )
        except HashListError as exc:
            raise CommandError(str(exc)) from None
        result = hash_import_run(import_id=imp.pk, actor=ACTOR)
        assert result is not None
        return result
