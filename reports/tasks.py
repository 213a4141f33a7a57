from __future__ import annotations

from celery import shared_task


@shared_task(name="reports.build_packet", acks_late=True)
def build_packet(packet_id: int) -> str | None:
    from .services import packet_build

    packet = packet_build(packet_id=packet_id)
    return packet.status if packet else None


@shared_task(name="reports.sweep_stuck_packets")
def sweep_stuck_packets() -> int:
    from .services import packet_sweep_stuck

    stuck = packet_sweep_stuck()
    for packet_id in stuck:
        build_packet.delay(packet_id)
    return len(stuck)


@shared_task(name="reports.generate_transparency_report", acks_late=True)
def generate_transparency_report(report_id: int) -> str | None:
    from .transparency import transparency_report_generate

    report = transparency_report_generate(report_id=report_id)
    return report.status if report else None
