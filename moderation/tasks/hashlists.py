"""Hash list tasks: import an uploaded list file with progress; sweep imports whose worker died."""

from __future__ import annotations

from celery import shared_task

from core.enqueue import enqueue_on_commit
from moderation.services.hashlists import hash_import_run, hash_import_sweep_stuck


@shared_task(name="moderation.import_hash_list", acks_late=True)
def import_hash_list_task(import_id: int) -> None:
    hash_import_run(import_id=import_id)


@shared_task(name="moderation.sweep_stuck_imports")
def sweep_stuck_imports_task() -> int:
    """Beat: hand imports whose worker died (or whose task was lost) to a worker again; the
    run's claim makes a second enqueue of the same import harmless."""
    stuck = hash_import_sweep_stuck()
    for import_id in stuck:
        enqueue_on_commit(import_hash_list_task, import_id)
    return len(stuck)
