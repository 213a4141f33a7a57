"""Hash list tasks: import an uploaded list file with progress."""

from __future__ import annotations

from celery import shared_task

from moderation.services.hashlists import hash_import_run


@shared_task(name="moderation.import_hash_list", acks_late=True)
def import_hash_list_task(import_id: int) -> None:
    hash_import_run(import_id=import_id)
