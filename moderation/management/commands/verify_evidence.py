from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation.services.evidence import evidence_verify


class Command(BaseCommand):
    help = (
        "Check every stored evidence file: it decrypts (each chunk's GCM tag, its data key) and "
        "a media file's plaintext hashes to the custody SHA-256 recorded at intake; purged "
        "media have no live data key. Exits non-zero naming each problem. Files still in "
        "plaintext are problems unless --allow-plaintext."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-plaintext",
            action="store_true",
            help="do not count files stored before encryption as problems (mid-migration)",
        )

    def handle(self, *args: Any, allow_plaintext: bool = False, **options: Any) -> None:
        report = evidence_verify(allow_plaintext=allow_plaintext)
        for problem in report.problems:
            self.stderr.write(problem)
        summary = (
            f"{report.checked} evidence file(s) checked: {report.encrypted} encrypted, "
            f"{report.plaintext} plaintext, {len(report.problems)} problem(s)."
        )
        if not report.ok:
            raise CommandError(summary)
        self.stdout.write(summary)
