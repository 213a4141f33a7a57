"""Saved filters (moderation.services.saved_filters): what is kept, what is refused, and the
audit trail of creating and deleting one."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import AuditEvent
from moderation.models import SavedFilter
from moderation.services.saved_filters import (
    MAX_SAVED_FILTERS,
    SavedFilterRefused,
    saved_filter_create,
    saved_filter_delete,
)


@pytest.mark.django_db
class SavedFilterCreateTests:
    def test_it_keeps_the_pages_filters_only_and_audits(self, moderator: Any) -> None:
        saved = saved_filter_create(
            user=moderator,
            name=" P1 grooming ",
            page="queue",
            params={"priority": "1", "category": "grooming", "after": "1|x|2", "q": "x"},
        )
        assert saved.name == "P1 grooming" and saved.user == moderator
        assert saved.params == {"priority": "1", "category": "grooming"}
        event = AuditEvent.objects.get(verb="saved_filter.created")
        assert event.actor_id == moderator.pk and event.object_id == str(saved.pk)
        assert event.data["params"] == saved.params

    def test_a_search_keeps_search_fields(self, moderator: Any) -> None:
        saved = saved_filter_create(
            user=moderator,
            name="heron",
            page="search",
            params={"q": "heron", "distance": "20", "page": "3", "mine": "1"},
        )
        assert saved.params == {"q": "heron", "distance": "20"}

    @pytest.mark.parametrize(
        ("name", "page", "params", "message"),
        [
            ("", "queue", {"priority": "1"}, "Give the filter a name."),
            ("x" * 81, "queue", {"priority": "1"}, "80 characters"),
            ("none", "queue", {"after": "1|x|2"}, "at least one filter"),
            ("bad page", "admin", {"priority": "1"}, "queue or the search page"),
            ("long", "search", {"q": "x" * 501}, "too long"),
        ],
    )
    def test_it_refuses_what_cannot_be_saved(
        self, moderator: Any, name: str, page: str, params: dict[str, str], message: str
    ) -> None:
        with pytest.raises(SavedFilterRefused, match=message):
            saved_filter_create(user=moderator, name=name, page=page, params=params)
        assert not SavedFilter.objects.exists()
        assert not AuditEvent.objects.filter(verb="saved_filter.created").exists()

    def test_names_are_unique_per_person_not_globally(
        self, moderator: Any, moderator2: Any
    ) -> None:
        saved_filter_create(user=moderator, name="mine", page="queue", params={"mine": "1"})
        saved_filter_create(user=moderator2, name="mine", page="queue", params={"mine": "1"})
        with pytest.raises(SavedFilterRefused, match="already have a filter named"):
            saved_filter_create(user=moderator, name="mine", page="queue", params={"mine": "1"})
        assert SavedFilter.objects.count() == 2

    def test_a_person_has_at_most_the_limit(self, moderator: Any) -> None:
        for n in range(MAX_SAVED_FILTERS):
            saved_filter_create(user=moderator, name=f"f{n}", page="queue", params={"mine": "1"})
        with pytest.raises(SavedFilterRefused, match="delete one"):
            saved_filter_create(user=moderator, name="one more", page="queue", params={"mine": "1"})


@pytest.mark.django_db
class SavedFilterDeleteTests:
    def test_it_deletes_and_audits(self, moderator: Any) -> None:
        saved = saved_filter_create(user=moderator, name="m", page="queue", params={"mine": "1"})
        pk = saved.pk
        saved_filter_delete(saved_filter=saved, user=moderator)
        assert not SavedFilter.objects.filter(pk=pk).exists()
        event = AuditEvent.objects.get(verb="saved_filter.deleted")
        assert event.actor_id == moderator.pk and event.object_id == str(pk)

    def test_it_refuses_someone_elses(self, moderator: Any, moderator2: Any) -> None:
        saved = saved_filter_create(user=moderator, name="m", page="queue", params={"mine": "1"})
        with pytest.raises(SavedFilterRefused):
            saved_filter_delete(saved_filter=saved, user=moderator2)
        assert SavedFilter.objects.filter(pk=saved.pk).exists()
        assert not AuditEvent.objects.filter(verb="saved_filter.deleted").exists()
