"""Fetching an exchange: incremental, page by page, resumable, one worker at a time.

`exchange_fetch(exchange_id=…)`:

1. Claim the exchange (`exchange_claim`, one conditional UPDATE); continue its open fetch or
   start one, audited.
2. Ask the library for the pages after the stored checkpoint (`fetch_iter`). Each page is
   read into records first: a page that can't be read, or holds an invalid record, is refused
   whole — the fetch fails with the reason and nothing of that page is applied. Then, in one
   transaction under the claim: the page's hashes are upserted with provenance
   (`known_hashes_upsert`, the file imports' path, so the quality gate is theirs), the hashes
   whose source entries were deleted are withdrawn (`known_hashes_withdraw`: no longer
   matched; the matches they made stay in case history, marked withdrawn), the checkpoint the
   library gave with the page is saved, the claim renewed, progress counted, the page audited.
   A worker that dies between pages loses nothing: the next claim resumes from the last saved
   checkpoint.
3. 429, 5xx and network errors (after the library's own quick retries) resume from the
   checkpoint after a wait — the source's Retry-After, or a doubling backoff — up to
   SAFEGUARD_EXCHANGE_RETRIES times; then the exchange waits (state "backoff") and beat
   retries it.
4. After SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS a fresh task takes over (so no task runs
   into its time limit); the fetch goes on from the checkpoint.
5. When the source has nothing newer, the lists that gained or changed hashes get a new
   version and stored media are rescanned against them (retroactive matching). Lists that
   lost hashes get a new version with the page that withdrew them, so a withdrawn hash leaves
   perceptual matching at once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.audit import WORKER, Actor, audit_record
from core.enqueue import enqueue_on_commit
from moderation.models import Exchange, ExchangeEntry, ExchangeFetch, HashList, KnownHash
from moderation.services.hashlists import (
    ParsedRow,
    hash_list_changed,
    known_hashes_upsert,
    known_hashes_withdraw,
)

from .credentials import credentials_open, redacted_logs, secrets_of
from .errors import (
    ClaimLost,
    ExchangeError,
    FetchProblem,
    MalformedPage,
    SourceRefused,
    SourceUnavailable,
    problem_of,
)
from .programmes import ExchangeRecord, programme_for

FETCH_TASK = "moderation.fetch_exchange"
# Beat enqueues a due exchange and moves its due time this far out, so that it isn't enqueued
# again every minute while the task waits in the queue (a lost message is retried after it).
_QUEUED_FOR = timedelta(minutes=5)


def _lease() -> timedelta:
    return timedelta(seconds=settings.SAFEGUARD_EXCHANGE_LEASE_SECONDS)


def exchanges_due(*, now: datetime | None = None) -> list[int]:
    """Beat: enqueue a fetch of every enabled exchange whose next fetch is due and that no
    worker holds. Returns their ids."""
    now = now or timezone.now()
    due = list(
        Exchange.objects.filter(enabled=True)
        .filter(Q(next_fetch_at__isnull=True) | Q(next_fetch_at__lte=now))
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .values_list("pk", flat=True)[:100]
    )
    if due:
        Exchange.objects.filter(pk__in=due).update(next_fetch_at=now + _QUEUED_FOR)
        for pk in due:
            enqueue_on_commit(FETCH_TASK, pk)
    return due


def exchange_claim(*, exchange_id: int, now: datetime, fetching: bool = True) -> str | None:
    """Take the exchange for this worker; returns the claim's token, or None when another
    worker holds it (or it is disabled).

    One worker per exchange: two fetches of one exchange would race over its checkpoint and
    apply pages twice. The claim is one conditional UPDATE that succeeds only where no
    unexpired lease is held; when two workers run it at once (beat enqueued twice, "fetch
    now" during a scheduled run), PostgreSQL makes the second wait for the first's row lock
    and re-check the WHERE, which no longer holds, so exactly one updates a row. A worker
    killed mid-fetch holds its lease until it expires; the next claim resumes from the
    checkpoint. The lease outlasts the fetch task's hard time limit, so a live worker's
    claim never expires under it.
    """
    token = uuid.uuid4().hex
    changes: dict[str, Any] = {"claim_token": token, "lease_expires_at": now + _lease()}
    if fetching:
        changes["state"] = Exchange.State.RUNNING
    claimed = (
        Exchange.objects.filter(pk=exchange_id, enabled=True)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(**changes)
    )
    return token if claimed else None


def exchange_release(*, exchange_id: int, token: str, **changes: Any) -> bool:
    """Give the claim back (with any other changes to the row); False if it was lost."""
    return bool(
        Exchange.objects.filter(pk=exchange_id, claim_token=token).update(
            claim_token="", lease_expires_at=None, **changes
        )
    )


@dataclass
class _PageResult:
    records: int = 0
    added: int = 0
    updated: int = 0
    withdrawn: int = 0
    skipped: int = 0
    changed_lists: set[int] = field(default_factory=set)
    withdrawn_lists: set[int] = field(default_factory=set)


class _Routing:
    """Which list a record goes to: the list mapped to its category or to one of its labels,
    else the exchange's list."""

    def __init__(self, exchange: Exchange) -> None:
        self.default = exchange.hash_list
        wanted = {str(label): int(pk) for label, pk in (exchange.category_lists or {}).items()}
        lists = HashList.objects.in_bulk(set(wanted.values()))
        self.by_label = {label: lists[pk] for label, pk in wanted.items() if pk in lists}

    def list_for(self, record: ExchangeRecord) -> HashList | None:
        for label in (record.category, *record.labels):
            if label and label in self.by_label:
                return self.by_label[label]
        return self.default


def exchange_fetch(
    *, exchange_id: int, actor: Actor = WORKER, budget_seconds: float | None = None
) -> ExchangeFetch | None:
    """Fetch an exchange from its checkpoint (see the module docstring); returns its fetch
    record, or None when another worker holds the exchange or it is disabled."""
    token = exchange_claim(exchange_id=exchange_id, now=timezone.now())
    if token is None:
        return None
    try:
        fetch = _fetch_open(exchange_id, token, actor)
        exchange = Exchange.objects.select_related("hash_list").get(pk=exchange_id)
        programme = programme_for(exchange.kind)
        credentials = credentials_open(exchange.credentials)
        programme.check_credentials(credentials)
    except ExchangeError as exc:  # no credentials, or a key that can't open them
        return _fetch_failed(exchange_id, token, exc.message, actor)
    except ClaimLost:
        return None
    budget = settings.SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS
    deadline = time.monotonic() + (budget if budget_seconds is None else budget_seconds)
    secrets = secrets_of(credentials)
    routing = _Routing(exchange)
    attempts = 0
    try:
        with redacted_logs(secrets):
            while True:
                try:
                    stored = Exchange.objects.values_list("checkpoint", flat=True).get(
                        pk=exchange_id
                    )
                    api = programme.open(options=exchange.options, credentials=credentials)
                    pages = programme.fetch_iter(api, programme.checkpoint_load(stored))
                    while True:
                        delta = _next_page(pages, secrets)
                        if delta is None:
                            return _fetch_done(exchange, token, actor)
                        records = programme.records(delta)
                        _page_apply(
                            exchange,
                            token,
                            fetch,
                            routing,
                            records,
                            checkpoint=programme.checkpoint_dump(delta.checkpoint),
                            progress_at=programme.checkpoint_time(delta.checkpoint),
                            actor=actor,
                        )
                        attempts = 0
                        if time.monotonic() >= deadline:
                            return _fetch_continue(exchange, token, actor)
                except SourceUnavailable as exc:
                    # Resume from the saved checkpoint after a wait: the library's protocol
                    # (fetch_iter from a checkpoint) makes a retry a resume.
                    attempts += 1
                    wait = _wait_for(attempts, exc.retry_after)
                    if (
                        attempts > settings.SAFEGUARD_EXCHANGE_RETRIES
                        or wait > settings.SAFEGUARD_EXCHANGE_MAX_WAIT_SECONDS
                    ):
                        return _fetch_wait(exchange, token, exc.message, wait, actor)
                    ExchangeFetch.objects.filter(pk=fetch.pk).update(retries=F("retries") + 1)
                    time.sleep(wait)
    except (MalformedPage, SourceRefused) as exc:
        return _fetch_failed(exchange_id, token, exc.message, actor)
    except ClaimLost:
        return ExchangeFetch.objects.get(pk=fetch.pk)
    except BaseException as exc:
        # The time limit, a bug, the database: hand the exchange back so that it resumes from
        # its checkpoint soon, say why, and let the task see the error.
        message = f"The fetch stopped: {type(exc).__name__}; it resumes from its checkpoint."
        exchange_release(
            exchange_id=exchange_id,
            token=token,
            next_fetch_at=timezone.now() + timedelta(minutes=1),
            last_error=message,
            last_error_at=timezone.now(),
        )
        raise


def _next_page(pages: Iterator[Any], secrets: Sequence[str]) -> Any:
    """The library's next FetchDelta, None when the source has nothing newer; its errors
    turned into what they mean for the fetch (errors.problem_of)."""
    try:
        return next(pages)
    except StopIteration:
        return None
    except FetchProblem:
        raise
    except Exception as exc:  # noqa: BLE001 — the library raises whatever its parsing meets
        raise problem_of(exc, secrets) from None


def _wait_for(attempt: int, retry_after: float | None) -> float:
    backoff = settings.SAFEGUARD_EXCHANGE_RETRY_SECONDS * 2 ** (attempt - 1)
    return max(float(backoff), retry_after or 0.0)


def _locked(exchange_id: int, token: str) -> Exchange:
    """The exchange row, locked, if this worker's claim still holds (else ClaimLost)."""
    exchange = (
        Exchange.objects.select_for_update().filter(pk=exchange_id, claim_token=token).first()
    )
    if exchange is None:
        raise ClaimLost
    return exchange


def _fetch_open(exchange_id: int, token: str, actor: Actor) -> ExchangeFetch:
    """Continue the exchange's open fetch (after a crash, a wait or a hand-over) or start one."""
    with transaction.atomic():
        exchange = _locked(exchange_id, token)
        fetch = None
        if exchange.current_fetch_id is not None:
            fetch = ExchangeFetch.objects.filter(
                pk=exchange.current_fetch_id, status=ExchangeFetch.Status.RUNNING
            ).first()
        verb = "exchange.fetch_resumed"
        if fetch is None:
            fetch = ExchangeFetch.objects.create(exchange=exchange)
            Exchange.objects.filter(pk=exchange_id).update(current_fetch=fetch)
            verb = "exchange.fetch_started"
        ExchangeFetch.objects.filter(pk=fetch.pk).update(runs=F("runs") + 1)
        audit_record(
            actor=actor,
            verb=verb,
            obj=exchange,
            data={
                "fetch": fetch.pk,
                "from": exchange.progress_at.isoformat() if exchange.progress_at else None,
            },
        )
    return fetch


def _page_apply(
    exchange: Exchange,
    token: str,
    fetch: ExchangeFetch,
    routing: _Routing,
    records: list[ExchangeRecord],
    *,
    checkpoint: dict[str, Any],
    progress_at: datetime | None,
    actor: Actor,
) -> None:
    """Apply one page and save the checkpoint after it, in one transaction (all or none)."""
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(exchange.pk, token)
        result = _records_apply(locked, routing, records, actor=actor, now=now)
        for list_id in sorted(result.withdrawn_lists):
            hash_list_changed(hash_list_id=list_id, rescan=False)
        Exchange.objects.filter(pk=locked.pk).update(
            checkpoint=checkpoint,
            progress_at=progress_at or locked.progress_at,
            lease_expires_at=now + _lease(),
            dirty_lists=sorted(set(locked.dirty_lists) | result.changed_lists),
        )
        ExchangeFetch.objects.filter(pk=fetch.pk).update(
            pages=F("pages") + 1,
            records=F("records") + result.records,
            added=F("added") + result.added,
            updated=F("updated") + result.updated,
            withdrawn=F("withdrawn") + result.withdrawn,
            skipped=F("skipped") + result.skipped,
            last_page_at=now,
        )
        if not records:
            # An empty page moves the checkpoint only (NCMEC's time-window probing yields
            # dozens): progress bookkeeping, like the lease, without an audit event each.
            return
        audit_record(
            actor=actor,
            verb="exchange.page_applied",
            obj=locked,
            data={
                "fetch": fetch.pk,
                "records": result.records,
                "added": result.added,
                "updated": result.updated,
                "withdrawn": result.withdrawn,
                "skipped": result.skipped,
                "progress_at": progress_at.isoformat() if progress_at else None,
            },
        )


def _records_apply(
    exchange: Exchange,
    routing: _Routing,
    records: list[ExchangeRecord],
    *,
    actor: Actor,
    now: datetime,
) -> _PageResult:
    """Write one page's records, in the caller's transaction.

    1. Route each live record to its list and take the hash of that list's algorithm (none:
       skipped). Upsert the hashes list by list, with the exchange and labels as metadata.
    2. Upsert the provenance rows (exchange, remote id, hash): labels, category, last update;
       first seen stays as it was.
    3. End the provenance rows the page deletes — the source deleted or withdrew the id, or
       the id now lists another hash — and withdraw each hash that no live row still lists.
    """
    result = _PageResult(records=len(records))
    live_entries = list(
        ExchangeEntry.objects.filter(
            exchange=exchange,
            remote_id__in=[r.remote_id for r in records],
            deleted_at__isnull=True,
        ).values_list("pk", "remote_id", "known_hash_id")
    )
    lists: dict[int, HashList] = {}
    rows: dict[int, dict[str, ParsedRow]] = defaultdict(dict)
    targets: dict[str, tuple[int, str]] = {}
    by_id = {r.remote_id: r for r in records}
    for record in records:
        if record.deleted:
            continue
        hash_list = routing.list_for(record)
        value = record.hashes.get(hash_list.algorithm) if hash_list is not None else None
        if hash_list is None or value is None:
            result.skipped += 1
            continue
        lists[hash_list.pk] = hash_list
        rows[hash_list.pk][value] = ParsedRow(
            0, value, record.category, {"exchange": exchange.name, "labels": list(record.labels)}
        )
        targets[record.remote_id] = (hash_list.pk, value)
    ids: dict[tuple[int, str], int] = {}
    for list_id, by_value in rows.items():
        upserted = known_hashes_upsert(hash_list=lists[list_id], rows=list(by_value.values()))
        result.added += upserted.added
        result.updated += upserted.updated
        if upserted.added or upserted.updated:
            result.changed_lists.add(list_id)
        ids.update(((list_id, value), pk) for value, pk in upserted.ids.items())
    _entries_upsert(
        exchange,
        [
            (ids[target], remote_id, list(by_id[remote_id].labels), by_id[remote_id].category)
            for remote_id, target in targets.items()
        ],
        now=now,
    )
    deleted = {r.remote_id for r in records if r.deleted}
    ended = [
        (pk, remote_id, known_hash_id)
        for pk, remote_id, known_hash_id in live_entries
        if remote_id in deleted
        or (remote_id in targets and ids[targets[remote_id]] != known_hash_id)
    ]
    if ended:
        ExchangeEntry.objects.filter(pk__in=[pk for pk, _, _ in ended]).update(deleted_at=now)
        candidates = {known_hash_id for _, _, known_hash_id in ended}
        still_listed = set(
            ExchangeEntry.objects.filter(
                known_hash_id__in=candidates, deleted_at__isnull=True
            ).values_list("known_hash_id", flat=True)
        )
        by_list: dict[int, list[int]] = defaultdict(list)
        for pk, list_id in KnownHash.objects.filter(pk__in=candidates - still_listed).values_list(
            "pk", "hash_list_id"
        ):
            by_list[list_id].append(pk)
        for list_id, pks in by_list.items():
            withdrawn = known_hashes_withdraw(
                hash_list=HashList.objects.get(pk=list_id),
                known_hash_ids=pks,
                actor=actor,
                reason=f"deleted or withdrawn by its source (exchange {exchange.name})",
                data={
                    "exchange": exchange.pk,
                    "remote_ids": sorted({rid for _, rid, kh in ended if kh in pks})[:100],
                },
            )
            if withdrawn:
                result.withdrawn += len(withdrawn)
                result.withdrawn_lists.add(list_id)
    return result


def _entries_upsert(
    exchange: Exchange, rows: list[tuple[int, str, list[str], str]], *, now: datetime
) -> None:
    """Insert or refresh provenance rows (known hash id, remote id, labels, category): first
    seen stays as it was; last updated, labels and category are the page's; deleted_at
    cleared (listed again).

    On PostgreSQL one INSERT … SELECT FROM unnest(…) ON CONFLICT: the ORM's bulk_create builds
    a model instance and a parameter set per row, which cost a fifth of a page's time at 800
    rows (benchmarks/EXCHANGE.md). The ORM does it elsewhere."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO moderation_exchangeentry (exchange_id, known_hash_id, remote_id, "
                "labels, category, first_seen_at, last_updated_at, deleted_at) "
                "SELECT %s, t.known_hash_id, t.remote_id, t.labels::jsonb, t.category, %s, %s, "
                "NULL FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
                "AS t(known_hash_id, remote_id, labels, category) "
                "ON CONFLICT (exchange_id, remote_id, known_hash_id) DO UPDATE SET "
                "labels = EXCLUDED.labels, category = EXCLUDED.category, "
                "last_updated_at = EXCLUDED.last_updated_at, deleted_at = NULL",
                [
                    exchange.pk,
                    now,
                    now,
                    [r[0] for r in rows],
                    [r[1] for r in rows],
                    [json.dumps(r[2]) for r in rows],
                    [r[3] for r in rows],
                ],
            )
        return
    ExchangeEntry.objects.bulk_create(
        [
            ExchangeEntry(
                exchange=exchange,
                known_hash_id=known_hash_id,
                remote_id=remote_id,
                labels=labels,
                category=category,
                first_seen_at=now,
                last_updated_at=now,
                deleted_at=None,
            )
            for known_hash_id, remote_id, labels, category in rows
        ],
        update_conflicts=True,
        unique_fields=["exchange", "remote_id", "known_hash"],
        update_fields=["labels", "category", "last_updated_at", "deleted_at"],
    )


def _flush_lists(exchange: Exchange) -> None:
    """The lists the fetch added to or changed: new version, rescan after commit."""
    for list_id in exchange.dirty_lists:
        hash_list_changed(hash_list_id=int(list_id), rescan=True)


def _fetch_done(exchange: Exchange, token: str, actor: Actor) -> ExchangeFetch:
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(exchange.pk, token)
        _flush_lists(locked)
        fetch_id = locked.current_fetch_id
        ExchangeFetch.objects.filter(pk=fetch_id).update(
            status=ExchangeFetch.Status.DONE, finished_at=now, error=""
        )
        exchange_release(
            exchange_id=locked.pk,
            token=token,
            state=Exchange.State.IDLE,
            current_fetch=None,
            dirty_lists=[],
            last_success_at=now,
            last_error="",
            failures=0,
            next_fetch_at=now + timedelta(minutes=locked.interval_minutes),
        )
        fetch = ExchangeFetch.objects.get(pk=fetch_id)
        audit_record(
            actor=actor,
            verb="exchange.fetch_done",
            obj=locked,
            data={
                "fetch": fetch.pk,
                "pages": fetch.pages,
                "records": fetch.records,
                "added": fetch.added,
                "updated": fetch.updated,
                "withdrawn": fetch.withdrawn,
                "skipped": fetch.skipped,
                "rescanned_lists": locked.dirty_lists,
            },
        )
    return fetch


def _fetch_continue(exchange: Exchange, token: str, actor: Actor) -> ExchangeFetch:
    """The run's time is up: a fresh task goes on from the checkpoint."""
    with transaction.atomic():
        locked = _locked(exchange.pk, token)
        exchange_release(exchange_id=locked.pk, token=token, next_fetch_at=timezone.now())
        audit_record(
            actor=actor,
            verb="exchange.fetch_handed_over",
            obj=locked,
            data={"fetch": locked.current_fetch_id},
        )
        enqueue_on_commit(FETCH_TASK, locked.pk)
    return ExchangeFetch.objects.get(pk=locked.current_fetch_id)


def _fetch_wait(
    exchange: Exchange, token: str, message: str, wait: float, actor: Actor
) -> ExchangeFetch:
    """The source is unavailable or asked us to wait: the fetch stays open and resumes from
    its checkpoint when the wait is over (beat picks it up)."""
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(exchange.pk, token)
        backoff = min(60 * 2 ** min(locked.failures, 10), locked.interval_minutes * 60)
        retry_at = now + timedelta(seconds=max(wait, backoff))
        ExchangeFetch.objects.filter(pk=locked.current_fetch_id).update(error=message)
        exchange_release(
            exchange_id=locked.pk,
            token=token,
            state=Exchange.State.BACKOFF,
            next_fetch_at=retry_at,
            last_error=message,
            last_error_at=now,
            failures=F("failures") + 1,
        )
        audit_record(
            actor=actor,
            verb="exchange.fetch_waiting",
            obj=locked,
            data={
                "fetch": locked.current_fetch_id,
                "error": message,
                "retry_at": retry_at.isoformat(),
            },
        )
    return ExchangeFetch.objects.get(pk=locked.current_fetch_id)


def _fetch_failed(exchange_id: int, token: str, message: str, actor: Actor) -> ExchangeFetch | None:
    """The fetch can't go on (a malformed page, credentials refused or missing): it ends
    failed with the reason; the pages applied before stay applied, and their lists are
    re-versioned and rescanned. The exchange tries again at its next interval."""
    now = timezone.now()
    with transaction.atomic():
        try:
            locked = _locked(exchange_id, token)
        except ClaimLost:
            return None
        _flush_lists(locked)
        fetch_id = locked.current_fetch_id
        ExchangeFetch.objects.filter(pk=fetch_id).update(
            status=ExchangeFetch.Status.FAILED, finished_at=now, error=message
        )
        exchange_release(
            exchange_id=locked.pk,
            token=token,
            state=Exchange.State.FAILED,
            current_fetch=None,
            dirty_lists=[],
            last_error=message,
            last_error_at=now,
            failures=F("failures") + 1,
            next_fetch_at=now + timedelta(minutes=locked.interval_minutes),
        )
        audit_record(
            actor=actor,
            verb="exchange.fetch_failed",
            obj=locked,
            data={"fetch": fetch_id, "error": message},
        )
    return ExchangeFetch.objects.filter(pk=fetch_id).first()
