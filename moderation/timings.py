"""Assignment timings: how long a case waited for its first claim, how long people held it, and
how long it took to decide — per case (the case page) and as medians and 90th percentiles per
priority (the operations dashboard). Reads only: computed from the audit log's claim events and
the decisions, with no stored field of its own.

A hold starts with `case.claimed` (the queue) or `case.reassigned` (a lead hands the case to
someone, which also ends the hold before it) and ends with `case.released`,
`case.lease_expired`, or a decision (`Decision.created_at`; "escalate" ends the hold too).
Two limits of the record, stated where they show:
- a lapsed lease is recorded when the sweeper returns the case (every minute), so a hold that
  lapsed counts up to a minute past its lease;
- known-material cases actioned in bulk are taken and decided in one step without a claim
  event: they have a time to decision, but no time to first claim and no time held.

Imports moderation's models and core's AuditEvent only.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from core.models import AuditEvent
from moderation.models import Case, Decision

HOLD_STARTS = ("case.claimed", "case.reassigned")
HOLD_ENDS = ("case.released", "case.lease_expired")
VERBS = (*HOLD_STARTS, *HOLD_ENDS)
_DECISION = "decision"
_CHUNK = 1000


@dataclass(frozen=True)
class CaseTimings:
    to_first_claim: timedelta | None  # None: never claimed (or actioned in bulk)
    held: timedelta  # total over every hold, the current one up to now
    holds: int
    held_now: bool
    to_decision: timedelta | None  # None: not decided (yet)

    # For pages: the durations in words ("12 min", "3 h 5 min"), "—" for none.
    @property
    def to_first_claim_label(self) -> str:
        return _label(self.to_first_claim)

    @property
    def held_label(self) -> str:
        return _label(self.held)

    @property
    def to_decision_label(self) -> str:
        return _label(self.to_decision)


def _label(value: timedelta | None) -> str:
    return duration_label(None if value is None else value.total_seconds() / 60)


def timings_from_events(
    *,
    created_at: datetime,
    decided_at: datetime | None,
    events: Iterable[tuple[datetime, str]],
    held_now: bool,
    now: datetime,
) -> CaseTimings:
    """The timings of one case from its hold events, in time order.

    1. `events` are (time, verb) pairs: the audit verbs in `VERBS`, and "decision" for each
       decision on the case. They are taken in time order (stable for equal times).
    2. A claim or reassignment starts a hold (a reassignment first ends the open one); a
       release, a lapsed lease or a decision ends the open hold. An end with no open hold is
       ignored.
    3. A hold still open at the end counts up to `now` if the case is held now; otherwise its
       end was not recorded and it is left out rather than guessed.
    """
    first_claim: datetime | None = None
    start: datetime | None = None
    held = timedelta()
    holds = 0
    for at, verb in sorted(events, key=lambda e: e[0]):
        if verb in HOLD_STARTS:
            if start is not None:
                held += at - start
            start = at
            holds += 1
            first_claim = first_claim or at
        elif start is not None:  # an end: released, lapsed, decided
            held += at - start
            start = None
    if start is not None and held_now:
        held += max(now - start, timedelta())
    return CaseTimings(
        to_first_claim=first_claim - created_at if first_claim else None,
        held=held,
        holds=holds,
        held_now=start is not None and held_now,
        to_decision=decided_at - created_at if decided_at else None,
    )


def _events_by_case(case_ids: list[int]) -> dict[int, list[tuple[datetime, str]]]:
    """The hold events and decision times of the cases, by case id."""
    found: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for i in range(0, len(case_ids), _CHUNK):
        chunk = case_ids[i : i + _CHUNK]
        rows = (
            AuditEvent.objects.filter(
                object_type="moderation.case",
                object_id__in=[str(pk) for pk in chunk],
                verb__in=VERBS,
            )
            .order_by("created_at", "id")
            .values_list("object_id", "created_at", "verb")
        )
        for object_id, at, verb in rows:
            found[int(object_id)].append((at, verb))
        for case_id, at in Decision.objects.filter(case_id__in=chunk).values_list(
            "case_id", "created_at"
        ):
            found[case_id].append((at, _DECISION))
    return found


def _is_held(status: str, claimed_by_id: int | None) -> bool:
    return status == Case.Status.IN_REVIEW and claimed_by_id is not None


def case_timings(case: Case, *, now: datetime | None = None) -> CaseTimings:
    """The assignment timings of one case, for its page."""
    return timings_from_events(
        created_at=case.created_at,
        decided_at=case.decided_at,
        events=_events_by_case([case.pk]).get(case.pk, []),
        held_now=_is_held(case.status, case.claimed_by_id),
        now=now or timezone.now(),
    )


def _percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between the closest ranks (as the compliance metrics do)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def duration_label(minutes: float | None) -> str:
    """A duration for people: "45 s", "12 min", "3 h 5 min", "2 d 4 h"; "—" for none."""
    if minutes is None:
        return "—"
    seconds = round(minutes * 60)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"
    days, rest = divmod(seconds, 86400)
    return f"{days} d {rest // 3600} h" if rest >= 3600 else f"{days} d"


def _summary(values: list[timedelta]) -> dict[str, Any]:
    minutes = [v.total_seconds() / 60 for v in values]
    if not minutes:
        return {"n": 0, "median_min": None, "p90_min": None, "median": "—", "p90": "—"}
    median, p90 = statistics.median(minutes), _percentile(minutes, 0.9)
    return {
        "n": len(minutes),
        "median_min": round(median, 1),
        "p90_min": round(p90, 1),
        "median": duration_label(median),
        "p90": duration_label(p90),
    }


def timings_by_priority(
    *, start: datetime, end: datetime, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Median and 90th percentile of each timing for the cases decided in [start, end), per
    priority (the case's priority when read) and over all of them ("All", last).

    Each timing counts the cases that have it: a case actioned in bulk has no claim, so it
    is in the time to decision but not in the time to first claim or time held.
    """
    now = now or timezone.now()
    cases = list(
        Case.objects.filter(decided_at__gte=start, decided_at__lt=end).values_list(
            "pk", "priority", "created_at", "decided_at", "status", "claimed_by_id"
        )
    )
    events = _events_by_case([c[0] for c in cases])
    groups: dict[int | None, dict[str, list[timedelta]]] = {}
    counts: dict[int | None, int] = defaultdict(int)
    for pk, priority, created_at, decided_at, status, holder in cases:
        timings = timings_from_events(
            created_at=created_at,
            decided_at=decided_at,
            events=events.get(pk, []),
            held_now=_is_held(status, holder),
            now=now,
        )
        for key in (priority, None):
            counts[key] += 1
            group = groups.setdefault(key, {"to_first_claim": [], "held": [], "to_decision": []})
            if timings.to_first_claim is not None:
                group["to_first_claim"].append(timings.to_first_claim)
            if timings.holds:
                group["held"].append(timings.held)
            if timings.to_decision is not None:
                group["to_decision"].append(timings.to_decision)
    rows = []
    for key in [*sorted(k for k in groups if k is not None), None]:
        if key not in groups:
            continue
        group = groups[key]
        rows.append(
            {
                "priority": key,
                "label": "All" if key is None else f"P{key}",
                "cases": counts[key],
                "to_first_claim": _summary(group["to_first_claim"]),
                "held": _summary(group["held"]),
                "to_decision": _summary(group["to_decision"]),
            }
        )
    return rows
