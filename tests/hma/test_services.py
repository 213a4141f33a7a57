"""Curation services: a bank's lists (one per algorithm, created on the first signal), its
entries, its ratio, its deletion; audited, retroactively rescanned, one bank at a time."""

from __future__ import annotations

from typing import Any

import pytest

from core.audit import SystemActor
from core.models import AuditEvent
from hma.errors import BankExists, BankNotFound, HmaError, ManagedInConsole
from hma.models import Bank, BankList
from hma.services import (
    bank_content_remove,
    bank_create,
    bank_delete,
    bank_signals_add,
    bank_update,
)
from moderation.models import HashList, KnownFrame, KnownHash
from moderation.services.hashlists import hash_list_upsert
from tests.hma.factories import md5, pdq, vpdq

ACTOR = SystemActor("test")


@pytest.mark.django_db
class BankLifecycleTests:
    def test_a_bank_gets_one_list_per_algorithm_on_its_first_signal_of_it(self) -> None:
        bank = bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        assert not bank.links.exists()
        bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR)
        bank_signals_add(name="B", signals={"pdq": pdq(2), "video_md5": md5(1)}, actor=ACTOR)
        bank_signals_add(name="B", signals={"photo_md5": md5(2)}, actor=ACTOR)
        lists = {link.algorithm: link.hash_list for link in bank.links.select_related("hash_list")}
        assert {alg: hl.name for alg, hl in lists.items()} == {"pdq": "B (pdq)", "md5": "B (md5)"}
        assert lists["pdq"].hashes.count() == 2 and lists["md5"].hashes.count() == 2
        assert lists["pdq"].provider == "internal" and lists["pdq"].threshold == 31

    def test_a_list_name_taken_elsewhere_gets_the_bank_id(self) -> None:
        hash_list_upsert(name="B (pdq)", algorithm="pdq", actor=ACTOR)
        bank = bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR)
        assert bank.links.get().hash_list.name == f"B (pdq) #{bank.pk}"
        assert HashList.objects.get(name="B (pdq)").hashes.count() == 0

    def test_adding_a_value_twice_changes_nothing_the_second_time(
        self, django_capture_on_commit_callbacks: Any
    ) -> None:
        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        with django_capture_on_commit_callbacks(execute=False) as first:
            ((entry, value),) = bank_signals_add(
                name="B", signals={"pdq": pdq(1).upper()}, actor=ACTOR
            ).values()
        assert value == pdq(1) and len(first) == 1  # the rescan of the list
        version = HashList.objects.get(pk=entry.hash_list_id).version
        with django_capture_on_commit_callbacks(execute=False) as second:
            ((again, _),) = bank_signals_add(
                name="B", signals={"pdq": pdq(1)}, actor=ACTOR
            ).values()
        assert again.pk == entry.pk and second == []
        assert HashList.objects.get(pk=entry.hash_list_id).version == version

    def test_every_change_bumps_the_list_version_and_rescans_stored_media(
        self, django_capture_on_commit_callbacks: Any
    ) -> None:
        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        ((entry, _),) = bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR).values()
        before = HashList.objects.get(pk=entry.hash_list_id).version
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert bank_content_remove(name="B", content_id=entry.pk, actor=ACTOR) == 1
        assert HashList.objects.get(pk=entry.hash_list_id).version == before + 1
        assert len(callbacks) == 1
        entry.refresh_from_db()
        assert entry.withdrawn_at is not None  # withdrawn, not deleted: matches keep it

    def test_a_degenerate_pdq_is_flagged_low_quality_as_an_import_flags_it(self) -> None:
        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        ((entry, _),) = bank_signals_add(name="B", signals={"pdq": "0" * 64}, actor=ACTOR).values()
        assert entry.low_quality is True

    def test_a_vpdq_signal_becomes_an_entry_with_its_frames(self) -> None:
        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        signal = vpdq([(pdq(1), 90, 0.0), (pdq(2), 40, 1.0)])
        ((entry, value),) = bank_signals_add(
            name="B", signals={"vpdq": signal}, actor=ACTOR
        ).values()
        frames = list(KnownFrame.objects.filter(known_hash=entry).values_list("pdq", "quality"))
        assert frames == [(pdq(1), 90), (pdq(2), 40)]
        assert len(entry.value) == 64 and entry.metadata["frames"] == 2
        assert value == signal

    def test_nothing_is_written_when_one_signal_is_bad(self) -> None:
        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        with pytest.raises(HmaError):
            bank_signals_add(name="B", signals={"pdq": pdq(1), "vpdq": "[]"}, actor=ACTOR)
        assert not KnownHash.objects.exists() and not BankList.objects.exists()

    def test_the_ratio_enables_and_disables_the_lists(self) -> None:
        bank_create(name="B", matching_enabled_ratio=0.0, actor=ACTOR)
        bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR)
        hash_list = HashList.objects.get(name="B (pdq)")
        assert hash_list.enabled is False  # created as the bank is
        bank_update(name="B", matching_enabled_ratio=0.3, actor=ACTOR)
        hash_list.refresh_from_db()
        assert hash_list.enabled is True
        bank_update(name="B", matching_enabled_ratio=0.0, actor=ACTOR)
        hash_list.refresh_from_db()
        assert hash_list.enabled is False

    def test_a_rename_keeps_the_lists_and_refuses_a_taken_name(self) -> None:
        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        bank_create(name="C", matching_enabled_ratio=1.0, actor=ACTOR)
        bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR)
        with pytest.raises(BankExists):
            bank_update(name="B", new_name="C", actor=ACTOR)
        renamed = bank_update(name="B", new_name="D", actor=ACTOR)
        assert renamed.links.get().hash_list.name == "B (pdq)"
        event = AuditEvent.objects.filter(verb="hma_bank.updated").get()
        assert event.data == {"changes": {"name": ["B", "D"]}}

    def test_deleting_a_bank_keeps_its_row_and_entries_and_frees_its_name(self) -> None:
        bank = bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR)
        assert bank_delete(name="B", actor=ACTOR) is True
        bank.refresh_from_db()
        assert bank.deleted_at is not None
        old = HashList.objects.get(name="B (pdq)")
        assert old.enabled is False and old.hashes.count() == 1
        assert bank_delete(name="B", actor=ACTOR) is False
        again = bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR)
        assert again.links.get().hash_list.name == f"B (pdq) #{again.pk}"
        assert Bank.objects.filter(name="B").count() == 2

    def test_unknown_banks_and_console_lists(self) -> None:
        with pytest.raises(BankNotFound):
            bank_signals_add(name="NOPE", signals={"pdq": pdq(1)}, actor=ACTOR)
        hash_list_upsert(name="IWF", algorithm="pdq", actor=ACTOR)
        with pytest.raises(ManagedInConsole):
            bank_signals_add(name="IWF", signals={"pdq": pdq(1)}, actor=ACTOR)
        with pytest.raises(BankExists):
            bank_create(name="IWF", matching_enabled_ratio=1.0, actor=ACTOR)

    @pytest.mark.parametrize("name", ["lower", "1ABC", "A-B", "", "A" * 73])
    def test_names_follow_hmas_rule(self, name: str) -> None:
        with pytest.raises(HmaError):
            bank_create(name=name, matching_enabled_ratio=1.0, actor=ACTOR)

    def test_removing_content_of_another_bank_removes_nothing(self) -> None:
        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        bank_create(name="C", matching_enabled_ratio=1.0, actor=ACTOR)
        ((entry, _),) = bank_signals_add(name="B", signals={"pdq": pdq(1)}, actor=ACTOR).values()
        assert bank_content_remove(name="C", content_id=entry.pk, actor=ACTOR) == 0
        entry.refresh_from_db()
        assert entry.withdrawn_at is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.postgres
class ConcurrencyTests:
    def test_two_concurrent_first_signals_create_one_list(self) -> None:
        """Both requests lock the bank row: the second sees the first's list."""
        import threading

        from django.db import connection

        bank_create(name="B", matching_enabled_ratio=1.0, actor=ACTOR)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def add(seed: int) -> None:
            try:
                barrier.wait()
                bank_signals_add(name="B", signals={"pdq": pdq(seed)}, actor=ACTOR)
            except BaseException as exc:  # noqa: BLE001 — reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=add, args=(seed,)) for seed in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert BankList.objects.count() == 1
        assert KnownHash.objects.count() == 2
