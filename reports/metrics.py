"""Prometheus metrics of referral packets, computed at scrape time (listed in
SAFEGUARD_METRICS_COLLECTORS): packets by status, build failures, builds stuck past the
sweeper's limit, and reports past their deadline. One grouped query over a small table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import ReferralPacket

_UNSENT = [
    ReferralPacket.Status.DRAFT,
    ReferralPacket.Status.AWAITING_APPROVAL,
    ReferralPacket.Status.BUILDING,
    ReferralPacket.Status.READY,
    ReferralPacket.Status.EXPORTED,
    ReferralPacket.Status.FAILED,
]


def collect_packets() -> Iterator[Metric]:
    now = timezone.now()
    stuck_before = now - timedelta(seconds=settings.SAFEGUARD_PACKET_STUCK_AFTER_SECONDS)
    rows = (
        ReferralPacket.objects.values("status")
        .annotate(
            n=Count("id"),
            stuck=Count(
                "id",
                filter=Q(status=ReferralPacket.Status.BUILDING, build_started_at__lt=stuck_before),
            ),
            overdue=Count(
                "id",
                filter=Q(status__in=_UNSENT)
                & (Q(report_breached_at__isnull=False) | Q(report_due_at__lt=now)),
            ),
            unacknowledged=Count("id", filter=Q(ack_breached_at__isnull=False)),
        )
        .order_by()
    )
    by_status = GaugeMetricFamily(
        "safeguard_referral_packets", "Referral packets by status.", labels=["status"]
    )
    counts = dict.fromkeys(ReferralPacket.Status.values, 0)
    stuck = overdue = unacknowledged = 0
    for row in rows:
        counts[row["status"]] = row["n"]
        stuck += row["stuck"]
        overdue += row["overdue"]
        if row["status"] == ReferralPacket.Status.SUBMITTED:
            unacknowledged += row["unacknowledged"]
    for status, n in sorted(counts.items()):
        by_status.add_metric([status], n)
    yield by_status
    yield GaugeMetricFamily(
        "safeguard_packet_build_failures",
        "Referral packets whose build failed and awaits a retry (status failed).",
        value=counts[ReferralPacket.Status.FAILED],
    )
    yield GaugeMetricFamily(
        "safeguard_packet_builds_stuck",
        "Packets building for longer than SAFEGUARD_PACKET_STUCK_AFTER_SECONDS.",
        value=stuck,
    )
    breaches = GaugeMetricFamily(
        "safeguard_referrals_sla_breached",
        "Referrals past a deadline: not sent by the report deadline, or sent and not "
        "acknowledged in time.",
        labels=["deadline"],
    )
    breaches.add_metric(["report"], overdue)
    breaches.add_metric(["acknowledgement"], unacknowledged)
    yield breaches
