"""The Celery application: queues `hashing`, `default` and `packets`, configured from settings.

Run a worker for every queue with
    celery -A config worker -Q hashing,default,packets -l info
and beat with
    celery -A config beat -l info
"""

import logging.config
import os
from typing import Any

from celery import Celery, signals
from django.conf import settings
from django.db import close_old_connections
from kombu import Queue

from core import metrics, requestid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("safeguard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("hashing"), Queue("default"), Queue("packets"))
app.autodiscover_tasks()

# Request ids into tasks and their logs (core.requestid), and task outcomes counted for
# /metrics (core.metrics: in the broker's Redis, since workers and web are other processes,
# often on other machines).
signals.before_task_publish.connect(requestid.on_before_task_publish, weak=False)
signals.task_prerun.connect(requestid.on_task_prerun, weak=False)
signals.task_postrun.connect(requestid.on_task_postrun, weak=False)
signals.task_success.connect(metrics.on_task_success, weak=False)
signals.task_failure.connect(metrics.on_task_failure, weak=False)
signals.task_retry.connect(metrics.on_task_retry, weak=False)
signals.task_revoked.connect(metrics.on_task_revoked, weak=False)
signals.worker_ready.connect(metrics.on_worker_ready, weak=False)
signals.worker_shutdown.connect(metrics.on_worker_shutdown, weak=False)


def _database_hygiene(sender: Any = None, **_: Any) -> None:
    """Around each task, as Django around each request: drop a connection past
    DATABASE_CONN_MAX_AGE or unusable, keep a healthy one (settings.CELERY_DB_REUSE_MAX). Not
    for an eager task: it runs inside its caller's transaction and connection."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    close_old_connections()


signals.task_prerun.connect(_database_hygiene, weak=False)
signals.task_postrun.connect(_database_hygiene, weak=False)


@signals.setup_logging.connect
def _use_django_logging(**_: object) -> None:
    """Workers log through settings.LOGGING (LOG_FORMAT, the request id filter) instead of
    Celery's own format, so web and worker lines have one shape. Connecting here stops Celery
    from replacing it."""
    logging.config.dictConfig(settings.LOGGING)
