"""The search page: results with why each matched and no media, the search box in the top bar,
form errors, pagination, refusals, and restricted cases that a moderator never sees."""

from __future__ import annotations

from typing import Any

import pytest

from moderation import search as search_module
from moderation.models import Media
from moderation.services.cases import case_restrict
from tests.conftest import client_for
from tests.moderation.search_helpers import altered_jpeg, hashes_of, original_jpeg, submit_case


@pytest.mark.django_db
@pytest.mark.postgres
class SearchPageTests:
    def test_it_lists_matching_cases_with_why_they_matched(self, moderator: Any) -> None:
        case = submit_case(text="harbour at nine", subject_username="river_fox")
        other = submit_case(text="nothing")
        html = client_for(moderator).get("/search/", {"q": "harbour"}).content.decode()
        assert f'href="/cases/{case.pk}/"' in html and case.reference in html
        assert other.reference not in html
        assert "item text" in html and "1 case," in html

    def test_it_never_shows_media(self, moderator: Any) -> None:
        case = submit_case(image=original_jpeg())
        media = Media.objects.get(item__case=case)
        html = client_for(moderator).get("/search/", {"q": media.sha256}).content.decode()
        assert case.reference in html and "SHA-256" in html
        assert f"/media/{media.pk}" not in html and "<video" not in html
        assert html.count("<img") == html.count('<img src="/static/')  # the logo only

    def test_a_near_pdq_search_from_the_form(self, moderator: Any) -> None:
        copy = submit_case(image=altered_jpeg())
        pdq = hashes_of(original_jpeg()).pdq
        client = client_for(moderator)
        html = client.get("/search/", {"hash": pdq, "distance": "31"}).content.decode()
        assert copy.reference in html and "PDQ near (distance" in html
        html = client.get("/search/", {"hash": pdq, "distance": "0"}).content.decode()
        assert copy.reference not in html

    def test_malformed_fields_are_shown_as_errors(self, moderator: Any) -> None:
        response = client_for(moderator).get(
            "/search/", {"hash": "abc", "reference": "case nine", "distance": "300"}
        )
        html = response.content.decode()
        assert response.status_code == 200
        assert "A hash is 16" in html and "SG-000123" in html
        assert "Correct the fields marked above." in html

    def test_an_empty_search_lists_nothing(self, moderator: Any) -> None:
        submit_case()
        html = client_for(moderator).get("/search/").content.decode()
        assert "Enter something to search for" in html and "/cases/" not in html

    def test_results_are_paged(self, moderator: Any, monkeypatch: Any) -> None:
        monkeypatch.setattr(search_module, "SEARCH_PAGE_SIZE", 2)
        cases = [submit_case(text="harbour") for _ in range(3)]
        client = client_for(moderator)
        first = client.get("/search/", {"q": "harbour"}).content.decode()
        second = client.get("/search/", {"q": "harbour", "page": "2"}).content.decode()
        assert "3 cases" in first and "Page 1 of 2" in first and "q=harbour&amp;page=2" in first
        assert cases[0].reference in second and cases[0].reference not in first

    def test_the_top_bar_has_a_search_box_for_people_who_view_cases(
        self, moderator: Any, outsider: Any
    ) -> None:
        html = client_for(moderator).get("/").content.decode()
        assert 'role="search"' in html and 'action="/search/"' in html
        html = client_for(outsider).get("/").content.decode()
        assert 'action="/search/"' not in html

    def test_a_moderator_never_sees_a_restricted_case(self, moderator: Any, lead: Any) -> None:
        case = submit_case(text="restricted harbour", image=original_jpeg())
        case_restrict(case=case, actor=lead)
        sha256 = Media.objects.get(item__case=case).sha256
        for params in ({"q": "harbour"}, {"q": case.reference}, {"hash": sha256}):
            html = client_for(moderator).get("/search/", params).content.decode()
            assert f'href="/cases/{case.pk}/"' not in html and "0 cases" in html, params
            html = client_for(lead).get("/search/", params).content.decode()
            assert f'href="/cases/{case.pk}/"' in html and "restricted" in html, params

    def test_an_outsider_is_refused(self, outsider: Any) -> None:
        assert client_for(outsider).get("/search/", {"q": "x"}).status_code == 403

    def test_anonymous_people_are_sent_to_log_in(self, client: Any) -> None:
        response = client.get("/search/", {"q": "x"})
        assert response.status_code == 302 and "/login/" in response["Location"]
