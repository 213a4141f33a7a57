"""Exchange tasks: beat enqueues due exchanges; a fetch task fetches one, then sends its
feedback."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from moderation.exchanges.feedback import exchange_feedback_export
from moderation.exchanges.fetch import exchange_fetch, exchanges_due


@shared_task(name="moderation.exchanges_due")
def exchanges_due_task() -> int:
    """Beat: hand every enabled exchange whose fetch is due to a worker."""
    return len(exchanges_due())


# One exchange at a time, whatever the number of messages: the fetch claims the exchange with a
# conditional UPDATE (moderation.exchanges.fetch.exchange_claim) and a second task for it finds
# the claim taken and returns. acks_late: a worker killed mid-fetch leaves the message to be
# redelivered, and the fetch resumes from the checkpoint of its last applied page. The run hands
# over to a fresh task after its budget, well inside these limits.
@shared_task(
    name="moderation.fetch_exchange",
    acks_late=True,
    soft_time_limit=settings.SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS + 60,
    time_limit=settings.SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS + 90,
)
def fetch_exchange_task(exchange_id: int) -> None:
    exchange_fetch(exchange_id=exchange_id)
    exchange_feedback_export(exchange_id=exchange_id)
