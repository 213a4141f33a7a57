"""Celery tasks (reports.tasks): registered names, the stuck-build sweeper's fan-out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celery import current_app
from django.utils import timezone

from reports.models import ReferralPacket
from reports.packets import packet_approve
from reports.tasks import (
    build_packet_task,
    generate_transparency_report_task,
    sweep_stuck_packets_task,
)
from tests.reports.factories import submitted_packet


class TaskNameTests:
    def test_the_task_names_are_unchanged_and_registered(self) -> None:
        for task, name in (
            (build_packet_task, "reports.build_packet"),
            (sweep_stuck_packets_task, "reports.sweep_stuck_packets"),
            (generate_transparency_report_task, "reports.generate_transparency_report"),
        ):
            assert task.name == name and name in current_app.tasks


@pytest.mark.django_db
class SweepStuckPacketsTests:
    def test_the_sweeper_re_enqueues_a_build_whose_worker_died(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = submitted_packet(moderator, lead)
        packet_approve(
            packet=packet, lead=lead2, declaration_confirmed=True
        )  # on_commit not run: the "worker died"
        ReferralPacket.objects.filter(pk=packet.pk).update(
            build_started_at=timezone.now() - timedelta(hours=1)
        )
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert sweep_stuck_packets_task() == 1
        assert len(callbacks) == 1
        assert ReferralPacket.objects.get(pk=packet.pk).status == "ready"
        assert build_packet_task(packet.pk) == "ready"  # a duplicate delivery is a no-op
