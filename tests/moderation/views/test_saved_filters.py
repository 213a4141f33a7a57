"""Saved filters on the queue and search pages: saving the current filters, opening and
deleting them, privacy (someone else's filter is a 404), and claiming ignoring filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from moderation.models import SavedFilter
from moderation.services.saved_filters import saved_filter_create
from tests.conftest import client_for
from tests.moderation.factories import make_open_case


@pytest.mark.django_db
class SavedFilterViewTests:
    def test_saving_the_queue_filters_opens_them(self, moderator: Any) -> None:
        response = client_for(moderator).post(
            "/queue/filters",
            {"name": "P1 grooming", "page": "queue", "query": "priority=1&category=grooming"},
        )
        saved = SavedFilter.objects.get(user=moderator)
        assert saved.params == {"priority": "1", "category": "grooming"}
        assert response.status_code == 302
        assert response["Location"] == "/queue/?priority=1&category=grooming"

    def test_saving_a_search_opens_the_search_page(self, moderator: Any) -> None:
        response = client_for(moderator).post(
            "/queue/filters", {"name": "heron", "page": "search", "query": "q=heron&page=2"}
        )
        assert response["Location"] == "/search/?q=heron"

    def test_a_refusal_goes_back_to_the_same_filters(self, moderator: Any) -> None:
        response = client_for(moderator).post(
            "/queue/filters", {"name": "", "page": "search", "query": "q=heron"}, follow=True
        )
        assert response.redirect_chain[-1][0] == "/search/?q=heron"
        assert "Give the filter a name." in response.content.decode()
        assert not SavedFilter.objects.exists()

    def test_the_queue_and_search_pages_list_only_my_filters(
        self, moderator: Any, moderator2: Any
    ) -> None:
        saved_filter_create(user=moderator, name="Mine P1", page="queue", params={"priority": "1"})
        saved_filter_create(user=moderator2, name="Theirs", page="search", params={"q": "x"})
        for path in ("/queue/", "/search/"):
            html = client_for(moderator).get(path).content.decode()
            assert "Mine P1" in html and 'href="/queue/?priority=1"' in html, path
            assert "Theirs" not in html, path

    def test_deleting_my_filter(self, moderator: Any) -> None:
        saved = saved_filter_create(user=moderator, name="m", page="queue", params={"mine": "1"})
        response = client_for(moderator).post(
            f"/queue/filters/{saved.pk}/delete", {"back": "search"}
        )
        assert response["Location"] == "/search/"
        assert not SavedFilter.objects.filter(pk=saved.pk).exists()

    def test_someone_elses_filter_is_not_found(
        self, moderator: Any, moderator2: Any, lead: Any, admin_user: Any
    ) -> None:
        saved = saved_filter_create(user=moderator, name="m", page="queue", params={"mine": "1"})
        for user in (moderator2, lead, admin_user):
            response = client_for(user).post(f"/queue/filters/{saved.pk}/delete")
            assert response.status_code == 404
        assert SavedFilter.objects.filter(pk=saved.pk).exists()

    def test_an_outsider_is_refused(self, outsider: Any, moderator: Any) -> None:
        saved = saved_filter_create(user=moderator, name="m", page="queue", params={"mine": "1"})
        client = client_for(outsider)
        assert client.post("/queue/filters", {"name": "x", "query": "mine=1"}).status_code == 403
        assert client.post(f"/queue/filters/{saved.pk}/delete").status_code == 403
        assert not SavedFilter.objects.filter(user=outsider).exists()


@pytest.mark.django_db
class FilteredQueueTests:
    def test_next_case_takes_the_head_of_the_whole_queue_whatever_the_filter(
        self, moderator: Any
    ) -> None:
        head = make_open_case(1, timedelta(minutes=30))
        listed = make_open_case(4, timedelta(hours=2))
        client = client_for(moderator)
        html = client.get("/queue/", {"priority": "4"}).content.decode()
        assert listed.reference in html and head.reference not in html
        assert "always takes the head of the whole queue" in html
        assert client.post("/queue/next")["Location"] == f"/cases/{head.pk}/"
