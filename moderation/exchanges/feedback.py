"""Feedback to exchanges: reviewers' verdicts on matches of an exchange's hashes, sent back to
programmes that accept them (StopNCII: a true match is "Blocked", a false one "NotBlocked").

`exchange_feedback_export(exchange_id=…)`, run by the fetch task after each fetch run:

1. Claim the exchange (the fetch's claim, without changing its state): one worker per
   exchange, so two runs never send the same verdicts.
2. Record the verdicts given since the cursor as ExchangeFeedback rows (pending) — each
   verdict once (unique per exchange, match and verdict time); the cursor re-reads a short
   overlap, because a verdict's time is taken before its transaction commits.
3. Send the pending and failed rows in one call through the library, outside any
   transaction; mark them sent, or failed with the reason (retried, up to a limit). Audited.

Only verdicts given after feedback was enabled are sent, and only for hashes the exchange
still lists. A worker that dies after sending and before recording it sends again (at least
once; StopNCII feedback on a hash is idempotent).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from moderation.models import Exchange, ExchangeFeedback, Match

from .credentials import credentials_open, redacted_logs, secrets_of
from .errors import ExchangeError, problem_of
from .fetch import exchange_claim, exchange_release
from .programmes import FeedbackItem, programme_for

MAX_ATTEMPTS = 5
_BATCH = 500
# Verdict times are taken inside their transactions, which may commit out of order.
_OVERLAP = timedelta(minutes=10)


def exchange_feedback_export(*, exchange_id: int, actor: Actor = WORKER) -> int:
    """Record and send the exchange's new verdicts; returns how many were sent."""
    exchange = Exchange.objects.filter(pk=exchange_id).first()
    if exchange is None or not (exchange.enabled and exchange.feedback_enabled):
        return 0
    programme = programme_for(exchange.kind)
    if not programme.accepts_feedback:
        return 0
    token = exchange_claim(exchange_id=exchange_id, now=timezone.now(), fetching=False)
    if token is None:
        return 0  # a fetch holds it; its task exports when it is done
    try:
        _queue_verdicts(exchange, actor)
        return _send_pending(exchange, actor)
    finally:
        exchange_release(exchange_id=exchange_id, token=token)


def _queue_verdicts(exchange: Exchange, actor: Actor) -> int:
    if exchange.feedback_cursor is None:
        return 0
    matches = list(
        Match.objects.filter(
            verdict_at__gt=exchange.feedback_cursor - _OVERLAP,
            known_hash__exchange_entries__exchange=exchange,
            known_hash__exchange_entries__deleted_at__isnull=True,
        )
        .exclude(verdict="")
        .select_related("known_hash", "hash_list")
        .distinct()
        .order_by("verdict_at", "pk")[:1000]
    )
    if not matches:
        return 0
    seen = set(
        ExchangeFeedback.objects.filter(
            exchange=exchange, match__in=[m.pk for m in matches]
        ).values_list("match_id", "verdict_at")
    )
    new = [
        ExchangeFeedback(
            exchange=exchange,
            match=m,
            algorithm=m.hash_list.algorithm,
            value=m.known_hash.value,
            verdict=m.verdict,
            verdict_at=m.verdict_at,
        )
        for m in matches
        if (m.pk, m.verdict_at) not in seen
    ]
    newest = max(m.verdict_at for m in matches if m.verdict_at is not None)
    with transaction.atomic():
        ExchangeFeedback.objects.bulk_create(new, ignore_conflicts=True)
        Exchange.objects.filter(pk=exchange.pk).update(
            feedback_cursor=max(newest, exchange.feedback_cursor)
        )
        if new:
            audit_record(
                actor=actor,
                verb="exchange.feedback_queued",
                obj=exchange,
                data={"matches": [f.match_id for f in new][:200], "count": len(new)},
            )
    return len(new)


def _send_pending(exchange: Exchange, actor: Actor) -> int:
    pending = list(
        ExchangeFeedback.objects.filter(
            exchange=exchange,
            status__in=[ExchangeFeedback.Status.PENDING, ExchangeFeedback.Status.FAILED],
            attempts__lt=MAX_ATTEMPTS,
        ).order_by("verdict_at", "pk")[:_BATCH]
    )
    if not pending:
        return 0
    ids = [row.pk for row in pending]
    programme = programme_for(exchange.kind)
    secrets: list[str] = []
    try:
        credentials = credentials_open(exchange.credentials)
        secrets = secrets_of(credentials)
        if not credentials.get("feedback_function_key"):
            raise ExchangeError("No SubmitFeedback function key is stored for this exchange.")
        with redacted_logs(secrets):
            programme.send_feedback(
                options=exchange.options,
                credentials=credentials,
                items=[
                    FeedbackItem(
                        row.algorithm, row.value, row.verdict == Match.Verdict.TRUE_POSITIVE
                    )
                    for row in pending
                ],
            )
    except Exception as exc:  # noqa: BLE001 — every outcome is recorded, the send retried
        error = exc.message if isinstance(exc, ExchangeError) else problem_of(exc, secrets).message
        with transaction.atomic():
            ExchangeFeedback.objects.filter(pk__in=ids).update(
                status=ExchangeFeedback.Status.FAILED, attempts=F("attempts") + 1, error=error
            )
            audit_record(
                actor=actor,
                verb="exchange.feedback_failed",
                obj=exchange,
                data={"feedback": ids, "error": error},
            )
        return 0
    with transaction.atomic():
        ExchangeFeedback.objects.filter(pk__in=ids).update(
            status=ExchangeFeedback.Status.SENT,
            attempts=F("attempts") + 1,
            sent_at=timezone.now(),
            error="",
        )
        audit_record(
            actor=actor,
            verb="exchange.feedback_sent",
            obj=exchange,
            data={
                "feedback": ids,
                "true_positive": sum(r.verdict == Match.Verdict.TRUE_POSITIVE for r in pending),
                "false_positive": sum(r.verdict == Match.Verdict.FALSE_POSITIVE for r in pending),
            },
        )
    return len(pending)
