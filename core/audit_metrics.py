"""Metrics of the audit chain, computed at scrape time (listed in SAFEGUARD_METRICS_COLLECTORS).

Events are written unchained and sealed by the beat sealer every few seconds
(core.audit.audit_seal); signed checkpoints of the head are written every few minutes
(core.checkpoints). The sealing lag is the age of the oldest unsealed event — the sealer's work
list, read through its partial index (`audit_unsealed_idx`) — so a stalled sealer shows as a
growing number within seconds, before the chain's guarantees quietly lapse.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, Min
from prometheus_client.core import GaugeMetricFamily, Metric

from .checkpoints import checkpoint_latest
from .models import AuditEvent


def collect_audit() -> Iterator[Metric]:
    now = time.time()
    unsealed = AuditEvent.objects.filter(seq__isnull=True).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    yield GaugeMetricFamily(
        "safeguard_audit_unsealed_events",
        "Audit events written but not yet linked into the hash chain.",
        value=unsealed["n"],
    )
    oldest = unsealed["oldest"]
    yield GaugeMetricFamily(
        "safeguard_audit_sealing_lag_seconds",
        "Age of the oldest audit event not yet sealed into the chain (0 when all are sealed).",
        value=max(0.0, now - oldest.timestamp()) if oldest else 0.0,
    )
    latest = checkpoint_latest()
    at = datetime.fromisoformat(latest["checkpoint"]["at"]).timestamp() if latest else 0.0
    yield GaugeMetricFamily(
        "safeguard_audit_last_checkpoint_timestamp_seconds",
        "When the newest signed checkpoint of the chain's head was written (Unix time; 0: none).",
        value=at,
    )
