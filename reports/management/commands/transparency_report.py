"""`manage.py transparency_report`: print a period's transparency aggregates as JSON or CSV.

Imports the selectors (period, aggregates) and the transparency renderers.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.selectors.compliance import PeriodError, parse_period
from reports.selectors.transparency import transparency_metrics
from reports.transparency import render_csv, render_json


class Command(BaseCommand):
    help = (
        "Print an aggregate transparency report for a period (dates inclusive, UTC): no "
        "content, no personal data, small counts suppressed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", required=True, help="YYYY-MM-DD")
        parser.add_argument("--end", required=True, help="YYYY-MM-DD (inclusive)")
        parser.add_argument("--format", default="json", help="json or csv")

    def handle(self, *args: Any, start: str, end: str, format: str, **options: Any) -> None:
        if format not in ("json", "csv"):
            raise CommandError(f"Unknown format {format!r}: choose json or csv.")
        try:
            period = parse_period(start, end)
        except PeriodError as exc:
            raise CommandError(str(exc)) from None
        metrics = transparency_metrics(period, threshold=settings.SAFEGUARD_TRANSPARENCY_MIN_COUNT)
        self.stdout.write(
            render_json(metrics) if format == "json" else render_csv(metrics), ending=""
        )
