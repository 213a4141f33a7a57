from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.checkpoints import audit_verify_against_checkpoints, checkpoints_load
from core.tasks import seal_audit_chain


class Command(BaseCommand):
    help = (
        "Seal pending audit events into the hash chain, then verify the chain and the signed "
        "checkpoints of its head (a deleted tail, a rewritten chain, backdated inserts); exits "
        "non-zero naming the first problem. --since SEQ starts from that checkpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            type=int,
            metavar="SEQ",
            help="verify from the signed checkpoint at this seq instead of the first event",
        )

    def handle(self, *args: Any, since: int | None = None, **options: Any) -> None:
        seal_audit_chain()
        report = audit_verify_against_checkpoints(since=since)
        if not report.ok:
            where = f" at event {report.broken_at}" if report.broken_at else ""
            raise CommandError(
                f"Audit chain broken{where} after {report.checked} good events: {report.reason}"
            )
        count = len(checkpoints_load())
        start = f" from checkpoint {since}" if since else ""
        self.stdout.write(
            f"Audit chain intact: {report.checked} events verified{start}; "
            f"{count} signed checkpoint(s) match."
        )
