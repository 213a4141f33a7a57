from __future__ import annotations

import logging

from celery import shared_task

from .audit import audit_seal
from .checkpoints import audit_verify_against_checkpoints, checkpoint_write

logger = logging.getLogger(__name__)


@shared_task(name="core.seal_audit_chain")
def seal_audit_chain() -> int:
    """Beat, every few seconds: link newly committed audit events into the hash chain."""
    sealed = total = audit_seal()
    while sealed:
        sealed = audit_seal()
        total += sealed
    return total


@shared_task(name="core.write_audit_checkpoint")
def write_audit_checkpoint() -> int | None:
    """Beat, every few minutes: sign and store the chain's head outside the database."""
    checkpoint = checkpoint_write()
    return checkpoint.seq if checkpoint else None


@shared_task(name="core.verify_audit_chain")
def verify_audit_chain() -> bool:
    seal_audit_chain()
    report = audit_verify_against_checkpoints()
    if not report.ok:
        logger.critical("Audit chain broken at event %s: %s", report.broken_at, report.reason)
    return report.ok
