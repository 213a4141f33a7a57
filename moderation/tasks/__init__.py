"""Thin Celery tasks, one module per family: take ids, treat a missing row as done, call one
service. Task names (`moderation.<name>`) are the public contract and never change; Python
names end in `_task`.

Importing this package registers every moderation task (Celery's autodiscovery imports
`moderation.tasks`; `ModerationConfig.ready()` imports it in every process, so
`core.enqueue.enqueue_on_commit` finds tasks by name). Task modules import services at module
level; services never import task modules.
"""

from . import (
    escalations,
    exchanges,
    hashing,
    hashlists,
    notifications,
    queue,
    retention,
    rules,
    webhooks,
)

__all__ = [
    "escalations",
    "exchanges",
    "hashing",
    "hashlists",
    "notifications",
    "queue",
    "retention",
    "rules",
    "webhooks",
]
