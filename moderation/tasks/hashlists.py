"""Hash list tasks: import an uploaded list file with progress; sweep imports whose worker died;
keep a list's match index fresh (delta read now, merge into a new base in the background)."""

from __future__ import annotations

from celery import shared_task

from core.enqueue import enqueue_on_commit
from moderation.matching.banks import bank_refresh, prune_indexes
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


@shared_task(name="moderation.refresh_match_index")
def refresh_match_index_task(hash_list_id: int) -> None:
    """After a list changed: its new entries matchable now, the freshness recorded, and the
    delta merged into a new base once it is large (moderation.matching.banks.bank_refresh)."""
    bank_refresh(hash_list_id)


@shared_task(name="moderation.prune_match_indexes")
def prune_match_indexes_task() -> dict[str, int]:
    """Beat: remove index directories nothing will open again (dead builds, lists deleted,
    superseded versions; moderation.matching.banks.prune_indexes) on the machine of the worker
    that takes it. Each machine also prunes whenever it builds a new versioned index."""
    return prune_indexes()
