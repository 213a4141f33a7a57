"""Curation through HMA's /c routes (OpenMediaMatch blueprints/curation.py): create, rename,
enable and delete banks; add signals to a bank; remove a bank's content.

A bank's signals go to its hash list of their algorithm, created on the first signal of that
algorithm (hma.models). A bank's content is one list entry (KnownHash), so HMA's
``bank_content_id`` is the entry's id. Every write locks the bank's row first, so concurrent
writes to one bank are serialised, and writes an audit event in its transaction; a change to a
list bumps its version (which retires its match index) and, after commit, rescans stored media
against it, as an import does (moderation.services.hashlists), so that media already received
get their matches retroactively.

Lists created outside this API are read-only here (ManagedInConsole): deleting or renaming an
IWF list through an HMA client should not be possible by accident.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.audit import Actor, audit_record
from core.enqueue import enqueue_on_commit
from moderation.media.hashing import pdq_is_degenerate
from moderation.models import HashList, KnownFrame, KnownHash
from moderation.services.hashlists import VideoEntry, hash_list_upsert

from .errors import BankExists, BankNotFound, HmaError, ManagedInConsole
from .models import BANK_NAME_MAX_LENGTH, BANK_NAME_PATTERN, Bank, BankList
from .selectors import bank_name_taken
from .signal_types import SignalType, signal_type_get


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not re.match(BANK_NAME_PATTERN, name):
        raise HmaError("Bank names must be UPPER_WITH_UNDERSCORE")
    if len(name) > BANK_NAME_MAX_LENGTH:
        raise HmaError(f"Bank names are at most {BANK_NAME_MAX_LENGTH} characters")
    return name


def _check_ratio(ratio: float) -> float:
    if not 0.0 <= ratio <= 1.0:
        raise HmaError("enabled_ratio must be between 0 and 1")
    return float(ratio)


def bank_ratio(*, enabled_ratio: float | None, enabled: bool | None, default: float) -> float:
    """HMA's rule: an explicit ratio wins; else enabled means 1 and disabled 0."""
    if enabled_ratio is not None:
        return _check_ratio(enabled_ratio)
    if enabled is not None:
        return 1.0 if enabled else 0.0
    return default


def _lock_bank(name: str) -> Bank:
    """The live bank of that name, its row locked for this transaction; BankNotFound, or
    ManagedInConsole for a list shown as a bank."""
    bank = Bank.objects.select_for_update().filter(name=name, deleted_at=None).first()
    if bank is not None:
        return bank
    if HashList.objects.filter(name=name, hma_link__isnull=True).exists():
        raise ManagedInConsole(
            f"'{name}' is a Safeguard hash list created outside the HMA API: it is matched and "
            "readable here, and managed in the console."
        )
    raise BankNotFound(f"bank '{name}' not found")


def bank_create(
    *, name: str, matching_enabled_ratio: float, actor: Actor, created_by: Any = None
) -> Bank:
    """A new, empty bank (its lists come with its first signals). BankExists (HMA's 403) when
    a live bank or a list shown as a bank has the name."""
    _check_name(name)
    _check_ratio(matching_enabled_ratio)
    with transaction.atomic():
        if bank_name_taken(name):
            raise BankExists("Bank already exists")
        try:
            # A savepoint: a concurrent create of the same name fails on the unique constraint
            # (checked above, but not locked), and must not poison the outer transaction.
            with transaction.atomic():
                bank = Bank.objects.create(
                    name=name,
                    matching_enabled_ratio=matching_enabled_ratio,
                    created_by=created_by,
                )
        except IntegrityError:
            raise BankExists("Bank already exists") from None
        audit_record(
            actor=actor,
            verb="hma_bank.created",
            obj=bank,
            data={"name": name, "matching_enabled_ratio": matching_enabled_ratio},
        )
    return bank


def bank_update(
    *,
    name: str,
    actor: Actor,
    new_name: str | None = None,
    matching_enabled_ratio: float | None = None,
) -> Bank:
    """Rename a bank and/or change its matching ratio. Its lists are enabled when the ratio
    is above 0 and disabled at 0 (through hash_list_upsert, audited); a list keeps the name it
    was created with."""
    if new_name is not None:
        _check_name(new_name)
    if matching_enabled_ratio is not None:
        _check_ratio(matching_enabled_ratio)
    with transaction.atomic():
        bank = _lock_bank(name)
        changes: dict[str, list[Any]] = {}
        if new_name is not None and new_name != bank.name:
            if bank_name_taken(new_name):
                raise BankExists("Bank name already exists")
            changes["name"] = [bank.name, new_name]
            bank.name = new_name
        if (
            matching_enabled_ratio is not None
            and matching_enabled_ratio != bank.matching_enabled_ratio
        ):
            changes["matching_enabled_ratio"] = [
                bank.matching_enabled_ratio,
                matching_enabled_ratio,
            ]
            bank.matching_enabled_ratio = matching_enabled_ratio
        if not changes:
            return bank
        try:
            with transaction.atomic():
                bank.save(update_fields=["name", "matching_enabled_ratio", "updated_at"])
        except IntegrityError:
            raise BankExists("Bank name already exists") from None
        if "matching_enabled_ratio" in changes:
            for link in bank.links.select_related("hash_list"):
                hash_list_upsert(
                    name=link.hash_list.name,
                    algorithm=link.hash_list.algorithm,
                    actor=actor,
                    enabled=bank.matching_enabled_ratio > 0,
                )
        audit_record(actor=actor, verb="hma_bank.updated", obj=bank, data={"changes": changes})
    return bank


def bank_delete(*, name: str, actor: Actor) -> bool:
    """Delete a bank: its row is kept (deleted_at) and its lists are disabled, so their
    entries and the matches they made stay in case history. False when no such bank exists
    (HMA answers success then too)."""
    with transaction.atomic():
        try:
            bank = _lock_bank(name)
        except BankNotFound:
            return False
        bank.deleted_at = timezone.now()
        bank.save(update_fields=["deleted_at", "updated_at"])
        lists = []
        for link in bank.links.select_related("hash_list"):
            hash_list_upsert(
                name=link.hash_list.name,
                algorithm=link.hash_list.algorithm,
                actor=actor,
                enabled=False,
            )
            lists.append(link.hash_list.name)
        audit_record(
            actor=actor, verb="hma_bank.deleted", obj=bank, data={"name": name, "lists": lists}
        )
    return True


def _free_list_name(bank: Bank, algorithm: str) -> str:
    base = f"{bank.name} ({algorithm})"
    candidates = [base, f"{base} #{bank.pk}"]
    candidates += [f"{base} #{bank.pk}-{n}" for n in range(2, 100)]
    taken = set(HashList.objects.filter(name__in=candidates).values_list("name", flat=True))
    return next(name for name in candidates if name not in taken)


def _bank_list(bank: Bank, algorithm: str, actor: Actor) -> HashList:
    """The bank's list of this algorithm, created (enabled as the bank is) and linked if it
    has none yet. Call with the bank row locked."""
    link = bank.links.select_related("hash_list").filter(algorithm=algorithm).first()
    if link is not None:
        return link.hash_list
    hash_list, created = hash_list_upsert(
        name=_free_list_name(bank, algorithm),
        algorithm=algorithm,
        actor=actor,
        enabled=bank.matching_enabled_ratio > 0,
    )
    if not created:
        # The free name was taken between the check and the upsert, which then changed that
        # list: roll everything back rather than adopt someone else's list.
        raise HmaError("A hash list was created with the same name meanwhile; try again.")
    BankList.objects.create(bank=bank, hash_list=hash_list, algorithm=algorithm)
    audit_record(
        actor=actor,
        verb="hma_bank.list_linked",
        obj=bank,
        data={"list": hash_list.name, "list_id": hash_list.pk, "algorithm": algorithm},
    )
    return hash_list


def _entry_put(
    bank: Bank, hash_list: HashList, signal_type: SignalType, value: str, actor: Actor
) -> tuple[KnownHash, bool]:
    """The list's entry for the value: found, restored if withdrawn, or added. Returns it and
    whether the list changed."""
    frames = signal_type.frames(value) if hash_list.algorithm == HashList.Algorithm.VPDQ else []
    # A vPDQ entry's value is the SHA-256 of its frames in vpdq text form, as an import's.
    key = VideoEntry(1, "", "", frames, {}).value if frames else value
    entry = KnownHash.objects.select_for_update().filter(hash_list=hash_list, value=key).first()
    if entry is not None and entry.withdrawn_at is None:
        return entry, False
    data = {"list": hash_list.name, "bank": bank.name, "signal_type": signal_type.name}
    if entry is not None:
        entry.withdrawn_at = None
        entry.save(update_fields=["withdrawn_at"])
        audit_record(actor=actor, verb="known_hash.restored", obj=entry, data=data)
        return entry, True
    metadata: dict[str, Any] = {"hma": {"signal_type": signal_type.name, "bank": bank.name}}
    if frames:
        metadata.update(name=f"{bank.name} content", frames=len(frames))
        metadata["duration"] = frames[-1].timestamp
    try:
        # A savepoint: an import into the same list may insert this value concurrently.
        with transaction.atomic():
            entry = KnownHash.objects.create(
                hash_list=hash_list,
                value=key,
                metadata=metadata,
                # As an import flags them (hashlists._low_quality): not matched perceptually
                # unless the list opts in.
                low_quality=hash_list.algorithm == HashList.Algorithm.PDQ
                and pdq_is_degenerate(key),
            )
    except IntegrityError:
        entry = KnownHash.objects.select_for_update().get(hash_list=hash_list, value=key)
        if entry.withdrawn_at is None:
            return entry, False
        entry.withdrawn_at = None
        entry.save(update_fields=["withdrawn_at"])
    if frames:
        KnownFrame.objects.bulk_create(
            [
                KnownFrame(
                    known_hash=entry,
                    frame=f.frame,
                    timestamp=f.timestamp,
                    quality=f.quality,
                    pdq=f.pdq,
                )
                for f in frames
            ],
            batch_size=2000,
            ignore_conflicts=True,
        )
    audit_record(
        actor=actor,
        verb="known_hash.added",
        obj=entry,
        data={**data, "value": key, "low_quality": entry.low_quality},
    )
    return entry, True


def _list_changed(hash_list: HashList) -> None:
    """Retire the list's match index (a new version) and rescan stored media after commit."""
    HashList.objects.filter(pk=hash_list.pk).update(
        version=F("version") + 1, updated_at=timezone.now()
    )
    enqueue_on_commit("moderation.rescan_list", hash_list.pk, 0)


def bank_signals_add(*, name: str, signals: Any, actor: Actor) -> dict[str, tuple[KnownHash, str]]:
    """HMA's POST /c/bank/<name>/signal: ``{signal type: value, …}`` into the bank. Every
    value is checked before anything is written. Returns each signal type's entry and
    normalised value; adding a value the bank already holds changes nothing and returns its
    entry."""
    if not isinstance(signals, dict) or not signals:
        raise HmaError("No signals given")
    parsed = []
    for signal_name, raw in signals.items():
        signal_type = signal_type_get(signal_name)
        parsed.append((signal_type, signal_type.validate(raw)))
    entries: dict[str, tuple[KnownHash, str]] = {}
    with transaction.atomic():
        bank = _lock_bank(name)
        changed: dict[int, HashList] = {}
        for signal_type, value in parsed:
            hash_list = _bank_list(bank, signal_type.algorithm, actor)
            entry, did_change = _entry_put(bank, hash_list, signal_type, value, actor)
            entries[signal_type.name] = (entry, value)
            if did_change:
                changed[hash_list.pk] = hash_list
        for hash_list in changed.values():
            _list_changed(hash_list)
    return entries


def bank_content_remove(*, name: str, content_id: int, actor: Actor) -> int:
    """HMA's DELETE /c/bank/<name>/content/<id>: withdraw the entry (no longer matched; the
    matches it made stay in case history, marked withdrawn). Returns how many were removed
    (0 when the bank holds no such live entry)."""
    with transaction.atomic():
        bank = _lock_bank(name)
        list_ids = list(bank.links.values_list("hash_list_id", flat=True))
        entry = (
            KnownHash.objects.select_related("hash_list")
            .filter(pk=content_id, hash_list_id__in=list_ids)
            .first()
        )
        if entry is None:
            return 0
        # Conditional: a concurrent withdrawal (a sync import, a lead's review) counts once.
        removed = KnownHash.objects.filter(pk=entry.pk, withdrawn_at=None).update(
            withdrawn_at=timezone.now()
        )
        if removed:
            _list_changed(entry.hash_list)
            audit_record(
                actor=actor,
                verb="hash_list.withdrawn",
                obj=entry.hash_list,
                data={
                    "known_hashes": [entry.pk],
                    "reason": "deleted through the HMA API",
                    "bank": bank.name,
                },
            )
    return removed
