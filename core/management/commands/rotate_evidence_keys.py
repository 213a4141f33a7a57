from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import SystemActor
from core.evidence_crypto import EvidenceKeyError, evidence_keys_rotate, master_key_line

ACTOR = SystemActor("manage.py rotate_evidence_keys")


class Command(BaseCommand):
    help = (
        "Re-wrap every evidence data key under the current (first) master key of "
        "SAFEGUARD_EVIDENCE_MASTER_KEYS, in audited batches; resumable. Evidence files are not "
        "rewritten. Keep the retired key listed until this reports nothing remaining. "
        "--generate ID prints a new master key entry instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--generate",
            metavar="ID",
            help="print a new master key entry 'ID:base64' to put first in the setting; "
            "changes nothing",
        )
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--limit", type=int, default=None, help="stop after this many keys")

    def handle(
        self,
        *args: Any,
        generate: str | None = None,
        batch_size: int = 500,
        limit: int | None = None,
        **options: Any,
    ) -> None:
        if generate is not None:
            if not generate or ":" in generate or "," in generate or len(generate) > 64:
                raise CommandError("A key id is 1-64 characters without ':' or ','.")
            self.stdout.write(master_key_line(generate))
            return
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            result = evidence_keys_rotate(actor=ACTOR, batch_size=batch_size, limit=limit)
        except (EvidenceKeyError, ValueError) as exc:
            raise CommandError(f"Rotation stopped: {exc}") from None
        self.stdout.write(
            f"{result.rewrapped} data key(s) re-wrapped under master key {result.current!r}; "
            f"{result.remaining} still under an older key."
        )
        if result.remaining and limit is None:
            raise CommandError("Some data keys are still under an older key: run it again.")
