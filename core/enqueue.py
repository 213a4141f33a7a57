"""The one way to hand work to a worker: after the current transaction commits.

Every enqueue in the project goes through `enqueue_on_commit` (a test checks the source).

1. After commit: a worker must never see an id whose row isn't committed yet, and a rolled
   back transaction must enqueue nothing.
2. Broker down: the request or task that wrote the rows must still succeed. The failure is
   logged and the work stays in the database in a state a sweeper (beat) picks up again —
   pending media, pending webhook deliveries, unacknowledged escalations, building packets.
3. Embedded default (no broker URL): tasks run eagerly in-process at commit, as Celery's
   `task_always_eager` does; `robust=True` keeps a failing eager task from turning a committed
   write into an error response.

Tasks are named by their registered Celery name (`"moderation.apply_rules"`), so services never
import task modules and task modules import services one way. Each app's AppConfig.ready()
imports its tasks package, so every name is registered in every process.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def _task(task: str | Task) -> Task:
    return current_app.tasks[task] if isinstance(task, str) else task


def enqueue_on_commit(task: str | Task, /, *args: Any, **kwargs: Any) -> None:
    """Send `task(*args, **kwargs)` to the broker once the current transaction commits (at
    once outside a transaction). Never raises for a broker that is down."""
    name = task if isinstance(task, str) else task.name
    resolved = _task(task)  # an unknown name fails here, in the caller, not after commit

    def _send() -> None:
        try:
            resolved.delay(*args, **kwargs)
        except Exception:
            logger.warning(
                "Could not enqueue %s%r; the work stays recorded for its sweeper",
                name,
                args,
                exc_info=True,
            )

    transaction.on_commit(_send, robust=True)
