from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import SystemActor
from core.evidence_crypto import EvidenceKeyError
from moderation.services.evidence import evidence_encrypt_legacy

ACTOR = SystemActor("manage.py encrypt_evidence")


class Command(BaseCommand):
    help = (
        "Encrypt at rest every evidence file stored before encryption (media files and their "
        "contact-sheet thumbnails), each under a new data key, checking custody first; "
        "resumable and idempotent. Exits non-zero if any file was left as it is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="stop after this many files")

    def handle(self, *args: Any, limit: int | None = None, **options: Any) -> None:
        try:
            run = evidence_encrypt_legacy(actor=ACTOR, limit=limit)
        except EvidenceKeyError as exc:
            raise CommandError(f"Encryption stopped: {exc}") from None
        self.stdout.write(
            f"{run.encrypted} file(s) encrypted; {run.already} already encrypted; "
            f"{len(run.refused)} left as they are."
        )
        for problem in run.refused:
            self.stderr.write(problem)
        if run.refused:
            raise CommandError(f"{len(run.refused)} file(s) could not be encrypted (see above).")
