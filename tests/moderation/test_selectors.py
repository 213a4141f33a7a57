"""Reads (moderation.selectors)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from moderation.selectors import cases_held_by, known_material_evidence, queue_page
from moderation.services.hashing import media_hash
from moderation.services.queue import case_claim_next
from principles.models import Priority
from tests.moderation.factories import make_item, make_known_material_cases, make_open_case


@pytest.mark.postgres
@pytest.mark.django_db
class CasesHeldByTests:
    def test_mine_reads_the_holder_index(self, moderator: Any) -> None:
        make_open_case(Priority.P2, timedelta(hours=1))
        make_open_case(Priority.P1, timedelta(hours=1))
        case = case_claim_next(user=moderator)
        assert [c.pk for c in cases_held_by(moderator)] == [case.pk]
        assert [c.pk for c in queue_page(user=moderator, mine=True)] == [case.pk]


@pytest.mark.django_db
class KnownMaterialEvidenceTests:
    def test_the_same_evidence_on_two_items_of_a_case_is_one_line_with_its_count(self) -> None:
        case = make_known_material_cases(77)[0]
        subject = case.items.get().subject_account_id
        second = make_item(kind="image", seed=77, subject=subject)  # the same image again
        assert second.case_id == case.pk
        media_hash(media_id=second.media.pk)
        assert known_material_evidence([case.pk]) == {
            case.pk: [
                {
                    "hash_list__name": "V",
                    "algorithm": "sha256",
                    "distance": 0,
                    "known_hash__category": "A",
                    "transform": "",
                    "items": 2,
                }
            ]
        }
