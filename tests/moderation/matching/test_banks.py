"""A list's match index as base + delta - tombstones (moderation.matching.banks, issue 15
part 8): a change is matchable without a new base, withdrawals stop matching, a merge keeps
every result, lookups during a merge see one consistent view, and results equal brute force on a
clustered list. Hash lists are synthetic (random bits, families of near-duplicates)."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.audit import SystemActor
from moderation.matching import banks
from moderation.matching.banks import (
    bank_load,
    bank_merge,
    bank_refresh,
    bank_status,
    match_perceptual,
)
from moderation.matching.index import HammingIndex, brute_force, hex_to_codes
from moderation.models import HashList, KnownHash
from moderation.services.hashlists import (
    ParsedRow,
    hash_list_changed,
    hash_list_upsert,
    known_hashes_upsert,
    known_hashes_withdraw,
)
from tests.conftest import client_for
from tests.moderation.factories import random_pdq

ACTOR = SystemActor("test")


def _flip(hex_value: str, bits: list[int]) -> str:
    value = int(hex_value, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:064x}"


def _near(rng: random.Random, centre: str, max_flips: int) -> str:
    return _flip(centre, rng.sample(range(256), rng.randint(0, max_flips)))


def _pdq_list(name: str = "bank-test", **options: Any) -> HashList:
    hash_list, _ = hash_list_upsert(name=name, algorithm="pdq", actor=ACTOR, **options)
    return hash_list


def _add(hash_list: HashList, values: list[str]) -> dict[str, int]:
    """Add entries the way an import or a fetch does, and mark the list changed."""
    unique = list(dict.fromkeys(values))  # an import keeps one row per value
    rows = [ParsedRow(line=i, value=v, category="", metadata={}) for i, v in enumerate(unique)]
    with transaction.atomic():
        result = known_hashes_upsert(hash_list=hash_list, rows=rows)
        hash_list_changed(hash_list_id=hash_list.pk, rescan=False)
    return result.ids


def _withdraw(hash_list: HashList, ids: list[int]) -> None:
    with transaction.atomic():
        known_hashes_withdraw(
            hash_list=hash_list, known_hash_ids=ids, actor=ACTOR, reason="deleted by the source"
        )
        hash_list_changed(hash_list_id=hash_list.pk, rescan=False)


def _fresh(hash_list: HashList) -> HashList:
    return HashList.objects.get(pk=hash_list.pk)


def _matches(hash_list: HashList, query: str) -> list[tuple[int, int]]:
    return [(c.known_hash_id, c.distance) for c in match_perceptual(query, _fresh(hash_list))]


def _oracle(hash_list: HashList, query: str) -> list[tuple[int, int]]:
    """Brute force over the list's live, eligible entries, read from the database."""
    hl = _fresh(hash_list)
    rows = KnownHash.objects.filter(hash_list=hl, withdrawn_at__isnull=True)
    if not hl.match_low_quality:
        rows = rows.filter(low_quality=False)
    pairs = list(rows.order_by("id").values_list("id", "value"))
    if not pairs:
        return []
    codes = hex_to_codes([v for _, v in pairs], 256)
    found = [(pairs[r][0], d) for r, d in brute_force(codes, query, hl.threshold)]
    return sorted(found, key=lambda p: (p[1], p[0]))


def _bases() -> list[Path]:
    return sorted(Path(settings.SAFEGUARD_INDEX_DIR).glob("*-b*[0-9]"))


@pytest.mark.django_db
class LayeredBankTests:
    def test_an_added_hash_matches_from_the_delta_without_a_new_base(self) -> None:
        rng = random.Random(1)
        hl = _pdq_list()
        _add(hl, [random_pdq(rng) for _ in range(200)])
        bank_load(_fresh(hl))
        assert len(_bases()) == 1
        new = random_pdq(rng)
        ids = _add(hl, [new])
        assert _matches(hl, new) == [(ids[new], 0)]
        near = _flip(new, [3, 70, 200])
        assert _matches(hl, near) == [(ids[new], 3)]
        bank = bank_load(_fresh(hl))
        assert bank.index.delta_size == 1
        assert len(_bases()) == 1  # no rebuild

    def test_a_withdrawn_hash_is_not_matched_and_a_relisted_one_is_again(self) -> None:
        rng = random.Random(2)
        hl = _pdq_list()
        values = [random_pdq(rng) for _ in range(100)]
        ids = _add(hl, values)
        assert _matches(hl, values[7]) == [(ids[values[7]], 0)]
        _withdraw(hl, [ids[values[7]]])
        assert _matches(hl, values[7]) == []
        assert _matches(hl, values[8]) == [(ids[values[8]], 0)]
        assert bank_load(_fresh(hl)).index.tombstones == 1
        _add(hl, [values[7]])  # listed again by its source: restored, same entry
        assert _matches(hl, values[7]) == [(ids[values[7]], 0)]
        assert bank_load(_fresh(hl)).index.tombstones == 0

    def test_a_hash_added_then_withdrawn_before_any_merge_never_matches(self) -> None:
        rng = random.Random(3)
        hl = _pdq_list()
        _add(hl, [random_pdq(rng) for _ in range(50)])
        bank_load(_fresh(hl))
        new = random_pdq(rng)
        ids = _add(hl, [new])
        assert _matches(hl, new) == [(ids[new], 0)]
        _withdraw(hl, [ids[new]])
        assert _matches(hl, new) == []
        assert bank_load(_fresh(hl)).index.delta_size == 0

    def test_a_merge_publishes_a_new_base_with_identical_results(self) -> None:
        rng = random.Random(4)
        hl = _pdq_list()
        centres = [random_pdq(rng) for _ in range(20)]
        ids = _add(hl, [_near(rng, c, 20) for c in centres for _ in range(10)])
        bank_load(_fresh(hl))
        added = _add(hl, [_near(rng, c, 20) for c in centres for _ in range(3)])
        _withdraw(hl, list(ids.values())[::7])
        queries = [_near(rng, c, 8) for c in centres] + list(added)[:5]
        before = [_matches(hl, q) for q in queries]
        assert bank_load(_fresh(hl)).index.delta_size > 0
        assert bank_merge(_fresh(hl)) is True
        bank = bank_load(_fresh(hl))
        assert (bank.index.delta_size, bank.index.tombstones) == (0, 0)
        assert len(_bases()) == 2  # the previous base is kept for processes still opening it
        assert [_matches(hl, q) for q in queries] == before
        assert before == [_oracle(hl, q) for q in queries]

    def test_results_equal_brute_force_on_a_clustered_list_with_delta_and_tombstones(
        self,
    ) -> None:
        rng = random.Random(5)
        hl = _pdq_list(match_low_quality=True)
        centres = [random_pdq(rng) for _ in range(15)]
        family = [_near(rng, c, 48) for c in centres for _ in range(rng.randint(5, 60))]
        flat = [_near(rng, "f8" * 32, 16) for _ in range(20)] + ["0" * 64]
        ids = _add(hl, family + flat + [random_pdq(rng) for _ in range(300)])
        bank_load(_fresh(hl))
        _add(hl, [_near(rng, c, 30) for c in centres[:5] for _ in range(8)])
        _withdraw(hl, list(ids.values())[::11])
        queries = [_near(rng, c, rng.randint(0, 40)) for c in centres for _ in range(3)]
        queries += [_near(rng, "f8" * 32, 10), random_pdq(rng)]
        for query in queries:
            assert _matches(hl, query) == _oracle(hl, query)

    def test_a_large_delta_is_built_into_a_new_base_at_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rng = random.Random(6)
        hl = _pdq_list()
        _add(hl, [random_pdq(rng) for _ in range(30)])
        bank_load(_fresh(hl))
        monkeypatch.setattr(banks, "DELTA_HARD_LIMIT", 5)
        values = [random_pdq(rng) for _ in range(10)]
        ids = _add(hl, values)
        assert _matches(hl, values[3]) == [(ids[values[3]], 0)]
        assert len(_bases()) == 2
        assert bank_load(_fresh(hl)).index.delta_size == 0

    def test_the_refresh_task_merges_past_the_threshold_and_records_freshness(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rng = random.Random(7)
        hl = _pdq_list()
        _add(hl, [random_pdq(rng) for _ in range(30)])
        bank_load(_fresh(hl))
        _add(hl, [random_pdq(rng) for _ in range(3)])
        status = bank_refresh(hl.pk)
        assert status["delta"] == 3 and len(_bases()) == 1
        assert status["freshness_seconds"] is not None and status["freshness_seconds"] >= 0
        monkeypatch.setattr(banks, "MERGE_THRESHOLD", 4)
        _add(hl, [random_pdq(rng) for _ in range(3)])
        bank_refresh(hl.pk)
        assert len(_bases()) == 2
        assert bank_load(_fresh(hl)).index.delta_size == 0
        assert bank_status(_fresh(hl))["size"] == 36

    def test_a_withdrawal_written_by_any_code_path_reaches_the_index(self) -> None:
        """The trigger stamps changed_at, so a writer that knows nothing of the index (a plain
        queryset update, as the HMA API and a lead's review do) is still followed."""
        rng = random.Random(8)
        hl = _pdq_list()
        values = [random_pdq(rng) for _ in range(20)]
        ids = _add(hl, values)
        bank_load(_fresh(hl))
        before = KnownHash.objects.get(pk=ids[values[0]]).changed_at
        KnownHash.objects.filter(pk=ids[values[0]]).update(withdrawn_at=timezone.now())
        assert KnownHash.objects.get(pk=ids[values[0]]).changed_at > before
        HashList.objects.filter(pk=hl.pk).update(version=hl.version + 100)
        assert _matches(hl, values[0]) == []

    def test_admins_see_the_index_and_its_freshness_in_the_api(self, admin_user: Any) -> None:
        rng = random.Random(9)
        hl = _pdq_list()
        _add(hl, [random_pdq(rng) for _ in range(10)])
        bank_load(_fresh(hl))
        _add(hl, [random_pdq(rng)])
        bank_refresh(hl.pk)
        response = client_for(admin_user).get("/api/v1/hash-lists")
        assert response.status_code == 200
        (listed,) = [row for row in response.json() if row["id"] == hl.pk]
        assert listed["index"]["delta"] == 1
        assert listed["index"]["size"] == 11
        assert listed["index"]["freshness_seconds"] >= 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ConcurrencyTests:
    def test_lookups_during_a_merge_see_one_consistent_view(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The merge is held half-way (its new base built, not yet published) while lookups go
        on: they neither wait for it nor see a mixture, and after it they see the same results
        from the new base."""
        rng = random.Random(10)
        hl = _pdq_list()
        centres = [random_pdq(rng) for _ in range(10)]
        ids = _add(hl, [_near(rng, c, 20) for c in centres for _ in range(20)])
        bank_load(_fresh(hl))
        _add(hl, [_near(rng, c, 20) for c in centres for _ in range(5)])
        _withdraw(hl, list(ids.values())[::5])
        queries = [_near(rng, c, 6) for c in centres]
        expected = [_oracle(hl, q) for q in queries]
        assert [_matches(hl, q) for q in queries] == expected

        built = threading.Event()
        release = threading.Event()
        real_save = HammingIndex.save

        def held_save(index: HammingIndex, *args: Any, **kwargs: Any) -> None:
            built.set()  # the merged base is built; hold it before it is written and published
            release.wait(30)
            real_save(index, *args, **kwargs)

        monkeypatch.setattr(HammingIndex, "save", held_save)
        outcome: list[bool] = []
        merger = threading.Thread(target=lambda: outcome.append(bank_merge(_fresh(hl))))
        merger.start()
        try:
            assert built.wait(30)
            for _ in range(5):
                assert [_matches(hl, q) for q in queries] == expected
        finally:
            release.set()
            merger.join(30)
        assert outcome == [True]
        assert len(_bases()) == 2
        bank = bank_load(_fresh(hl))
        assert (bank.index.delta_size, bank.index.tombstones) == (0, 0)
        assert [_matches(hl, q) for q in queries] == expected


@pytest.mark.django_db
class PruneTests:
    """Index directories nothing will open again are removed (banks.prune_indexes); the ones a
    process may still open, status files and locks stay."""

    @staticmethod
    def _dir(name: str, *, age: float = 0.0) -> Path:
        path = Path(settings.SAFEGUARD_INDEX_DIR) / name
        path.mkdir(parents=True)
        (path / "ids.npy").write_bytes(b"x")
        if age:
            stamp = path.stat().st_mtime - age
            os.utime(path, (stamp, stamp))
        return path

    def test_dead_builds_orphans_and_superseded_versions_go_the_rest_stays(self) -> None:
        hl, _ = hash_list_upsert(name="prune-video", algorithm="vpdq", actor=ACTOR)
        HashList.objects.filter(pk=hl.pk).update(version=5)
        hl = _fresh(hl)
        pdq = _pdq_list("prune-pdq")
        prefix, pdq_prefix = banks._prefix(hl), banks._prefix(pdq)
        root = Path(settings.SAFEGUARD_INDEX_DIR)
        root.mkdir(parents=True, exist_ok=True)
        (root / ".build.lock").write_text("")
        (root / f"{prefix}.status.json").write_text("{}")
        keep = [
            self._dir(f"{prefix}-v5"),
            self._dir(f"{prefix}-v4"),  # the previous version: a process may be opening it
            self._dir(f"{prefix}-v5.building-4242"),  # a build under way
            self._dir("99999-1-v1", age=60),  # a list being created: too young to call orphan
            self._dir(f"{pdq_prefix}-b1700000000000"),
        ]
        gone = [
            self._dir(f"{prefix}-v3"),
            self._dir(f"{prefix}-v1"),
            self._dir(f"{prefix}-v5.building-4343", age=banks.STALE_BUILD_SECONDS + 60),
            self._dir("99999-1-v2", age=banks.ORPHAN_SECONDS + 60),  # no such list
            self._dir(f"{pdq.pk}-1-b1700000000000", age=banks.ORPHAN_SECONDS + 60),  # old DB
        ]
        if banks._layered(pdq):  # a list on a base: its versioned indexes are superseded
            gone.append(self._dir(f"{pdq_prefix}-v1"))
        removed = banks.prune_indexes()
        assert [p.exists() for p in keep] == [True] * len(keep)
        assert [p.exists() for p in gone] == [False] * len(gone)
        assert (root / ".build.lock").exists() and (root / f"{prefix}.status.json").exists()
        assert sum(removed.values()) == len(gone)
        assert removed["stale_builds"] == 1 and removed["orphans"] == 2

    def test_building_a_new_version_removes_the_ones_before_the_previous(self) -> None:
        hl, _ = hash_list_upsert(name="prune-versions", algorithm="vpdq", actor=ACTOR)
        root = Path(settings.SAFEGUARD_INDEX_DIR)
        seen = []
        for _ in range(3):
            bank_load(_fresh(hl))
            seen.append(banks._bank_dir(_fresh(hl)))
            HashList.objects.filter(pk=hl.pk).update(version=F("version") + 1)
        assert [p.exists() for p in seen] == [False, True, True]
        assert all(p.parent == root for p in seen)

    def test_the_beat_task_prunes(self) -> None:
        from moderation.tasks.hashlists import prune_match_indexes_task

        orphan = self._dir("88888-1-v1", age=banks.ORPHAN_SECONDS + 60)
        assert prune_match_indexes_task.apply().get()["orphans"] == 1
        assert not orphan.exists()
        assert "moderation.prune_match_indexes" in {
            entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
        }
