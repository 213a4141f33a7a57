"""The Celery application: queues `hashing`, `default` and `packets`, configured from settings.

Run a worker for every queue with
    celery -A config worker -Q hashing,default,packets -l info
and beat with
    celery -A config beat -l info
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("safeguard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("hashing"), Queue("default"), Queue("packets"))
app.autodiscover_tasks()
