"""The bank catalogue: HMA banks, and Safeguard lists outside them shown as banks of their own."""

from __future__ import annotations

import pytest

from core.audit import SystemActor
from hma.selectors import bank_find, banks_all, lists_to_search
from hma.services import bank_create, bank_delete, bank_signals_add
from moderation.services.hashlists import hash_list_upsert
from tests.hma.factories import md5, pdq

ACTOR = SystemActor("test")


@pytest.mark.django_db
class CatalogueTests:
    def test_banks_and_lists_outside_them_are_listed_by_name(self) -> None:
        hash_list_upsert(name="IWF", algorithm="pdq", actor=ACTOR)
        hash_list_upsert(name="OLD", algorithm="md5", actor=ACTOR, enabled=False)
        bank_create(name="MINE", matching_enabled_ratio=0.5, actor=ACTOR)
        bank_signals_add(name="MINE", signals={"pdq": pdq(1), "video_md5": md5(1)}, actor=ACTOR)
        assert [(v.name, v.matching_enabled_ratio, v.bank is None) for v in banks_all()] == [
            ("IWF", 1.0, True),
            ("MINE", 0.5, False),
            ("OLD", 0.0, True),
        ]
        mine = bank_find("MINE")
        assert mine is not None and {hl.algorithm for hl in mine.lists} == {"pdq", "md5"}
        assert bank_find("MINE (pdq)") is None  # a bank's list is not a bank of its own

    def test_a_deleted_banks_lists_are_hidden_and_a_lists_name_twin_is_shadowed(self) -> None:
        bank_create(name="GONE", matching_enabled_ratio=1.0, actor=ACTOR)
        bank_signals_add(name="GONE", signals={"pdq": pdq(1)}, actor=ACTOR)
        bank_delete(name="GONE", actor=ACTOR)
        assert banks_all() == []
        bank_create(name="TWIN", matching_enabled_ratio=1.0, actor=ACTOR)
        hash_list_upsert(name="TWIN", algorithm="md5", actor=ACTOR)  # made in the console later
        assert [v.name for v in banks_all()] == ["TWIN"]
        twin = bank_find("TWIN")
        assert twin is not None and twin.bank is not None

    def test_searched_lists_are_named_after_their_bank(self) -> None:
        hash_list_upsert(name="IWF", algorithm="pdq", actor=ACTOR)
        bank_create(name="MINE", matching_enabled_ratio=0.25, actor=ACTOR)
        bank_signals_add(name="MINE", signals={"pdq": pdq(1)}, actor=ACTOR)
        found = {
            (s.bank, s.hash_list.name, s.matching_enabled_ratio) for s in lists_to_search({"pdq"})
        }
        assert found == {("IWF", "IWF", 1.0), ("MINE", "MINE (pdq)", 0.25)}
        assert [s.bank for s in lists_to_search({"pdq"}, {"MINE"})] == ["MINE"]
        assert lists_to_search({"md5"}) == []
