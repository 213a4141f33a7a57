"""Reads of the HMA API: the bank catalogue, a bank's content, and the lists a lookup searches.

A bank is an HMA bank (hma.models.Bank, its lists linked by BankList) or a Safeguard hash list
created outside this API, shown as a bank of its own under the list's name: every enabled list
is searched by a lookup, as the intake pipeline searches them, so every list must be nameable.
A list whose name is also a live HMA bank's is not listed separately (the bank is).

May import hma.models, hma.signal_types, moderation.models and Django. Nothing that writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from moderation.media.video import FrameHash
from moderation.models import HashList, KnownFrame, KnownHash

from .models import Bank, BankList
from .signal_types import NAME_OF_ALGORITHM, vpdq_dumps


@dataclass(frozen=True)
class BankView:
    name: str
    matching_enabled_ratio: float
    # None: a Safeguard list outside any HMA bank (read-only through this API).
    bank: Bank | None
    lists: tuple[HashList, ...]


@dataclass(frozen=True)
class SearchList:
    """An enabled list a lookup searches, with the bank it is reported under."""

    hash_list: HashList
    bank: str
    matching_enabled_ratio: float


def _bank_view(bank: Bank) -> BankView:
    lists = tuple(link.hash_list for link in bank.links.all())
    return BankView(bank.name, bank.matching_enabled_ratio, bank, lists)


def _list_view(hash_list: HashList) -> BankView:
    return BankView(hash_list.name, 1.0 if hash_list.enabled else 0.0, None, (hash_list,))


def _live_banks() -> Iterable[Bank]:
    return Bank.objects.filter(deleted_at__isnull=True).prefetch_related("links__hash_list")


def banks_all() -> list[BankView]:
    """Every bank, by name: the live HMA banks and the lists outside them."""
    views = [_bank_view(bank) for bank in _live_banks()]
    names = {view.name for view in views}
    views += [
        _list_view(hl)
        for hl in HashList.objects.filter(hma_link__isnull=True)
        if hl.name not in names
    ]
    return sorted(views, key=lambda view: view.name)


def bank_find(name: str) -> BankView | None:
    bank = _live_banks().filter(name=name).first()
    if bank is not None:
        return _bank_view(bank)
    hash_list = HashList.objects.filter(name=name, hma_link__isnull=True).first()
    return _list_view(hash_list) if hash_list is not None else None


def bank_name_taken(name: str) -> bool:
    """A live bank, or a list shown as a bank, has this name."""
    return (
        Bank.objects.filter(name=name, deleted_at__isnull=True).exists()
        or HashList.objects.filter(name=name, hma_link__isnull=True).exists()
    )


def bank_entry(view: BankView, content_id: int) -> KnownHash | None:
    """A live (not withdrawn) entry of one of the bank's lists."""
    return (
        KnownHash.objects.select_related("hash_list")
        .filter(pk=content_id, hash_list__in=[hl.pk for hl in view.lists], withdrawn_at=None)
        .first()
    )


def entry_signal(entry: KnownHash) -> tuple[str, str]:
    """(signal type, value) of a list entry: the name it was added under through this API, or
    the algorithm's; a vPDQ entry's value rebuilt from its frames."""
    hma = entry.metadata.get("hma") if isinstance(entry.metadata, dict) else None
    name = hma.get("signal_type") if isinstance(hma, dict) else None
    algorithm = entry.hash_list.algorithm
    name = name if isinstance(name, str) else NAME_OF_ALGORITHM[algorithm]
    if algorithm != HashList.Algorithm.VPDQ:
        return name, entry.value
    frames = KnownFrame.objects.filter(known_hash=entry).order_by("frame")
    return name, vpdq_dumps(
        [FrameHash(f.frame, f.timestamp, f.quality, f.pdq) for f in frames.iterator()]
    )


# The lists a lookup searches, in one hand-written statement: compiling the equivalent ORM
# query (select_related over the reverse link) cost more than running it (benchmarks/HMA.md).
_LISTS_SQL = """
    SELECT l.id, l.name, l.provider, l.algorithm, l.threshold, l.verified, l.version,
           l.min_quality, l.match_dihedral, l.match_low_quality, l.listed_percent,
           l.query_percent, l.created_at, l.updated_at, b.name, b.matching_enabled_ratio
    FROM {lists} l
    LEFT JOIN {links} k ON k.hash_list_id = l.id
    LEFT JOIN {banks} b ON b.id = k.bank_id AND b.deleted_at IS NULL
    WHERE l.enabled
    ORDER BY l.id
"""
_LIST_FIELDS = (
    "id",
    "name",
    "provider",
    "algorithm",
    "threshold",
    "verified",
    "version",
    "min_quality",
    "match_dihedral",
    "match_low_quality",
    "listed_percent",
    "query_percent",
    "created_at",
    "updated_at",
)


def _list_fields(values: tuple[Any, ...]) -> dict[str, Any]:
    """Column values as the model's Python values (a raw SQLite cursor returns times as text
    and booleans as integers)."""
    fields = {}
    for name, value in zip(_LIST_FIELDS, values, strict=True):
        value = HashList._meta.get_field(name).to_python(value)
        fields[name] = _aware(value) if isinstance(value, datetime) else value
    return fields


@dataclass(frozen=True)
class EntryState:
    """What a match reports of its list entry, read when the match is made."""

    category: str
    added_at: datetime | None
    quarantined_at: datetime | None
    quarantine_reason: str


# A lookup's matches are checked in one hand-written statement: the ORM compiled this join for
# longer than the database ran it, on every lookup that matched (benchmarks/HMA.md).
_ENTRIES_SQL = """
    SELECT h.id, h.category, h.created_at, h.quarantined_at, h.quarantine_reason
    FROM {entries} h JOIN {lists} l ON l.id = h.hash_list_id
    WHERE h.id IN ({placeholders}) AND h.withdrawn_at IS NULL AND l.enabled
"""


def _aware(value: Any) -> datetime | None:
    value = KnownHash._meta.get_field("created_at").to_python(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def entries_live(ids: Iterable[int]) -> dict[int, EntryState]:
    """The entries among ``ids`` that can match now: not withdrawn, in an enabled list."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    sql = _ENTRIES_SQL.format(
        entries=KnownHash._meta.db_table,
        lists=HashList._meta.db_table,
        placeholders=", ".join(["%s"] * len(wanted)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, wanted)
        rows = cursor.fetchall()
    return {
        pk: EntryState(category, _aware(added_at), _aware(quarantined_at), reason)
        for pk, category, added_at, quarantined_at, reason in rows
    }


# Every enabled list, with its bank, as last read by this process: (read at, lists).
_searchable: tuple[float | None, list[SearchList]] = (None, [])


def searchable_lists_clear() -> None:
    """Forget the lists this process read (the next lookup reads them again)."""
    global _searchable
    _searchable = (None, [])


def _searchable_read() -> list[SearchList]:
    sql = _LISTS_SQL.format(
        lists=HashList._meta.db_table, links=BankList._meta.db_table, banks=Bank._meta.db_table
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    found = []
    for row in rows:
        hash_list = HashList(enabled=True, **_list_fields(row[: len(_LIST_FIELDS)]))
        bank, ratio = row[len(_LIST_FIELDS) :]
        if bank is None:
            bank, ratio = hash_list.name, 1.0
        found.append(SearchList(hash_list, bank, ratio))
    return found


def lists_to_search(algorithms: Iterable[str], banks: set[str] | None = None) -> list[SearchList]:
    """The enabled lists of these algorithms, each with the bank it is reported under (its
    live HMA bank's name, or its own), optionally only those of the named banks.

    Read at most once per HMA_LIST_CACHE_SECONDS per process (0: on every call): a list
    added, or its settings changed, is searched within that time. What must stop matching at
    once — a withdrawn or quarantined entry, a disabled list — is checked on each match against
    the database (hma.lookup), so a cached list never reports one.
    """
    global _searchable
    read_at, lists = _searchable
    now = time.monotonic()
    max_age = settings.HMA_LIST_CACHE_SECONDS
    if read_at is None or max_age <= 0 or now - read_at >= max_age:
        lists = _searchable_read()
        _searchable = (now, lists)  # one assignment: threads see the old pair or the new one
    wanted = set(algorithms)
    return [
        entry
        for entry in lists
        if entry.hash_list.algorithm in wanted and (banks is None or entry.bank in banks)
    ]
