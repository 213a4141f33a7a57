"""Transparency report workflow (reports.transparency): request, generate, render."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from core.models import AuditEvent
from reports.models import TransparencyReport
from reports.transparency import render_csv, render_json, transparency_report_request

from .factories import decide, today


@pytest.mark.django_db
class TransparencyReportTests:
    def test_a_request_is_audited_and_generated_by_a_worker_after_commit(
        self, lead: Any, moderator: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        decide(moderator, "grooming")
        with django_capture_on_commit_callbacks() as callbacks:
            report = transparency_report_request(period=today(), actor=lead, created_by=lead)
        assert report.status == "pending" and len(callbacks) == 1
        assert AuditEvent.objects.filter(verb="transparency.requested").count() == 1
        callbacks[0]()
        report.refresh_from_db()
        assert report.status == "done" and report.progress == 100
        assert report.metrics["metrics"]["items_received"] == f"<{report.suppression_threshold}"
        assert AuditEvent.objects.filter(verb="transparency.generated").count() == 1

    def test_the_renderers_give_sorted_json_and_a_metric_value_csv(
        self, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            report = transparency_report_request(period=today(), actor=lead)
        report = TransparencyReport.objects.get(pk=report.pk)
        assert json.loads(render_json(report.metrics)) == report.metrics
        rows = list(csv.reader(io.StringIO(render_csv(report.metrics))))
        assert rows[0] == ["metric", "value"]
        assert ["period_start", today().start.isoformat()] in rows
