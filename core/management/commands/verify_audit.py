from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.audit import audit_verify_chain
from core.tasks import seal_audit_chain


class Command(BaseCommand):
    help = (
        "Seal pending audit events into the hash chain, then verify the whole chain; exits "
        "non-zero naming the first broken link."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        seal_audit_chain()
        report = audit_verify_chain()
        if not report.ok:
            raise CommandError(
                f"Audit chain broken at event {report.broken_at} after {report.checked} good "
                f"events: {report.reason}"
            )
        self.stdout.write(f"Audit chain intact: {report.checked} events verified.")
