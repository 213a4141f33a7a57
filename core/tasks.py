from __future__ import annotations

import logging

from celery import shared_task

from .audit import audit_verify_chain

logger = logging.getLogger(__name__)


@shared_task(name="core.verify_audit_chain")
def verify_audit_chain() -> bool:
    report = audit_verify_chain()
    if not report.ok:
        logger.critical("Audit chain broken at event %s: %s", report.broken_at, report.reason)
    return report.ok
