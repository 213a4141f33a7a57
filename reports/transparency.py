"""Transparency report workflows: request (audited), generate in a worker with progress, and
render the result as JSON or CSV.

Imports models, `reports.selectors` (the period and the aggregates) and core. Generation is
enqueued by task name through `core.enqueue`, never by importing `reports.tasks`.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from core.enqueue import enqueue_on_commit

from .models import TransparencyReport
from .selectors.compliance import Period
from .selectors.transparency import flatten_for_csv, transparency_metrics

FORMATS = ("json", "csv", "html")


def transparency_report_request(
    *, period: Period, actor: Actor, created_by: Any = None
) -> TransparencyReport:
    with transaction.atomic():
        report = TransparencyReport.objects.create(
            start=period.start,
            end=period.end,
            created_by=created_by,
            suppression_threshold=settings.SAFEGUARD_TRANSPARENCY_MIN_COUNT,
        )
        audit_record(
            actor=actor,
            verb="transparency.requested",
            obj=report,
            data={"start": period.start.isoformat(), "end": period.end.isoformat()},
        )
        enqueue_on_commit("reports.generate_transparency_report", report.pk)
    return report


def transparency_report_generate(*, report_id: int) -> TransparencyReport | None:
    if (
        not TransparencyReport.objects.filter(pk=report_id)
        .exclude(status="done")
        .update(status=TransparencyReport.Status.RUNNING, progress=5)
    ):
        return TransparencyReport.objects.filter(pk=report_id).first()
    report = TransparencyReport.objects.get(pk=report_id)

    def progress(value: int) -> None:
        TransparencyReport.objects.filter(pk=report_id).update(progress=min(value, 99))

    metrics = transparency_metrics(
        Period(report.start, report.end), threshold=report.suppression_threshold, progress=progress
    )
    with transaction.atomic():
        TransparencyReport.objects.filter(pk=report_id).update(
            status=TransparencyReport.Status.DONE,
            progress=100,
            metrics=metrics,
            finished_at=timezone.now(),
        )
        audit_record(actor=WORKER, verb="transparency.generated", obj=report, data={})
    return TransparencyReport.objects.get(pk=report_id)


def render_json(metrics: dict[str, Any]) -> str:
    return json.dumps(metrics, indent=2, sort_keys=True) + "\n"


def render_csv(metrics: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "value"])
    writer.writerows(flatten_for_csv(metrics))
    return buffer.getvalue()
