"""Celery tasks of the reports app: thin, named explicitly, each calls one service.

Imports the services (`reports.packets`, `reports.transparency`) at module level; services
never import this module, they enqueue by task name through `core.enqueue`.
`ReportsConfig.ready()` imports it so the names are registered in every process.
"""

from __future__ import annotations

from celery import shared_task

from core.enqueue import enqueue_on_commit

from .packets import packet_build, packet_sla_check, packet_sweep_stuck
from .transparency import transparency_report_generate


@shared_task(name="reports.build_packet", acks_late=True)
def build_packet_task(packet_id: int) -> str | None:
    packet = packet_build(packet_id=packet_id)
    return packet.status if packet else None


@shared_task(name="reports.sweep_stuck_packets")
def sweep_stuck_packets_task() -> int:
    """Beat: re-enqueue the builds whose worker died."""
    stuck = packet_sweep_stuck()
    for packet_id in stuck:
        enqueue_on_commit("reports.build_packet", packet_id)
    return len(stuck)


@shared_task(name="reports.referral_sla_check")
def referral_sla_check_task() -> dict[str, int]:
    """Beat: reports not sent by their due time; urgent reports not acknowledged in time."""
    return packet_sla_check()


@shared_task(name="reports.generate_transparency_report", acks_late=True)
def generate_transparency_report_task(report_id: int) -> str | None:
    report = transparency_report_generate(report_id=report_id)
    return report.status if report else None
