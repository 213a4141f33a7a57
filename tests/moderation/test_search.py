"""Search (moderation.search): each field finds the right cases, PDQ near-search finds an altered
copy of a synthetic image and not an unrelated one, restricted cases stay invisible to a
moderator however they are searched for, and the embedded (SQLite) fallbacks match."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone
from guardian.shortcuts import assign_perm

from moderation.models import Case, Item, Media
from moderation.search import (
    CaseSearch,
    SearchFilters,
    SearchInputError,
    items_matching_text_fallback,
    items_matching_text_fts,
    normalise_hash,
    parse_reference,
    pdq_near_scan,
    pdq_near_sql,
    search_cases,
)
from moderation.services.cases import case_restrict
from principles.models import HarmCategory
from tests.moderation.search_helpers import (
    UNRELATED_SEED,
    altered_jpeg,
    hashes_of,
    original_jpeg,
    submit,
    submit_case,
)


def _found(user: Any, query: str = "", **filters: Any) -> set[int]:
    return set(search_cases(user, query, SearchFilters(**filters)).values_list("pk", flat=True))


class ParsingTests:
    def test_it_reads_references_with_or_without_the_prefix_and_zeros(self) -> None:
        assert parse_reference("SG-000123") == 123
        assert parse_reference(" sg123 ") == 123
        assert parse_reference("123") is None
        assert parse_reference("123", bare_number=True) == 123
        assert parse_reference("SG-12a") is None

    def test_it_tells_hashes_by_length_and_refuses_anything_else(self) -> None:
        assert normalise_hash(" ABCDEF0123456789 ") == "abcdef0123456789"
        for bad in ("xyz", "abc", "0" * 63, "g" * 64):
            with pytest.raises(SearchInputError):
                normalise_hash(bad)


@pytest.mark.django_db
@pytest.mark.postgres
class FieldSearchTests:
    def test_free_text_finds_a_word_of_the_item_text(self, moderator: Any) -> None:
        wanted = submit_case(text="Arrange to meet at the harbour café on Friday")
        submit_case(text="Nothing relevant here")
        assert _found(moderator, "harbour") == {wanted.pk}
        assert _found(moderator, '"meet at the harbour"') == {wanted.pk}

    def test_free_text_finds_external_ids_subject_ids_and_usernames(self, moderator: Any) -> None:
        by_external = submit_case(external_id="post-777")
        by_subject = submit_case(subject_account_id="acct-9001")
        by_name = submit_case(subject_username="river_fox")
        assert _found(moderator, "post-777") == {by_external.pk}
        assert _found(moderator, "acct-9001") == {by_subject.pk}
        assert _found(moderator, "river_fox") == {by_name.pk}

    def test_free_text_finds_a_case_by_its_reference(self, moderator: Any) -> None:
        case = submit_case()
        submit_case()
        assert _found(moderator, case.reference) == {case.pk}
        assert _found(moderator, f"sg{case.pk}") == {case.pk}

    def test_the_reference_field_finds_one_case_and_a_bad_one_finds_none(
        self, moderator: Any
    ) -> None:
        case = submit_case()
        assert _found(moderator, reference=str(case.pk)) == {case.pk}
        assert _found(moderator, reference="SG-999999999") == set()

    def test_the_external_id_field_matches_exactly(self, moderator: Any) -> None:
        case = submit_case(external_id="thread-55")
        submit_case(external_id="thread-550")
        assert _found(moderator, external_id="thread-55") == {case.pk}

    def test_the_subject_field_matches_an_account_id_or_a_username(self, moderator: Any) -> None:
        by_id = submit_case(subject_account_id="acct-31")
        by_name = submit_case(subject_username="Quiet_Otter")
        submit_case(subject_username="quiet_otter_2")
        assert _found(moderator, subject="acct-31") == {by_id.pk}
        assert _found(moderator, subject="@quiet_otter") == {by_name.pk}

    def test_exact_hashes_of_every_algorithm_find_the_media(self, moderator: Any) -> None:
        case = submit_case(image=original_jpeg())
        submit_case(image=original_jpeg(UNRELATED_SEED))
        media = Media.objects.get(item__case=case)
        for digest in (media.sha256, media.md5, media.sha1, media.phash, media.dhash):
            assert _found(moderator, hash=digest) == {case.pk}, digest
            assert _found(moderator, digest.upper()) == {case.pk}, digest

    def test_category_status_and_received_dates_filter(self, moderator: Any) -> None:
        grooming = HarmCategory.objects.get(code="grooming")
        old = submit(text="harbour one")
        new = submit(text="harbour two")
        Case.objects.filter(pk=new.case_id).update(category=grooming)
        Item.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
        today = timezone.localdate()
        assert _found(moderator, "harbour", category="grooming") == {new.case_id}
        assert _found(moderator, "harbour", status="open") == {old.case_id, new.case_id}
        assert _found(moderator, "harbour", status="decided") == set()
        assert _found(moderator, "harbour", received_from=today) == {new.case_id}
        assert _found(moderator, received_to=today - timedelta(days=5)) == {old.case_id}

    def test_fields_narrow_each_other(self, moderator: Any) -> None:
        wanted = submit_case(text="harbour", subject_username="gull")
        submit_case(text="harbour", subject_username="tern")
        assert _found(moderator, "harbour", subject="gull") == {wanted.pk}

    def test_an_empty_search_finds_nothing(self, moderator: Any) -> None:
        submit_case()
        assert CaseSearch(moderator).is_empty
        assert _found(moderator) == set()

    def test_each_result_says_why_it_matched(self, moderator: Any) -> None:
        by_text = submit_case(text="lighthouse keeper")
        by_name = submit_case(subject_username="lighthouse")
        search = CaseSearch(moderator, "lighthouse")
        reasons = search.reasons([by_text.pk, by_name.pk])
        assert reasons == {by_text.pk: ["item text"], by_name.pk: ["username"]}
        _, hits = search.page(1)
        assert [(h.case.pk, h.items) for h in hits] == [(by_name.pk, 1), (by_text.pk, 1)]
        assert all(h.received_at is not None for h in hits)


@pytest.mark.django_db
@pytest.mark.postgres
class PdqNearSearchTests:
    def test_it_finds_an_altered_copy_and_not_an_unrelated_image(self, moderator: Any) -> None:
        copy = submit_case(image=altered_jpeg())
        unrelated = submit_case(image=original_jpeg(UNRELATED_SEED))
        original = hashes_of(original_jpeg())
        assert original.pdq_quality >= 50
        assert original.sha256 != Media.objects.get(item__case=copy).sha256

        search = CaseSearch(moderator, filters=SearchFilters(hash=original.pdq))
        assert set(search.cases().values_list("pk", flat=True)) == {copy.pk}
        assert search.reasons([unrelated.pk]) == {unrelated.pk: []}
        (reason,) = search.reasons([copy.pk])[copy.pk]
        assert reason.startswith("PDQ near (distance ")

    def test_the_distance_is_configurable(self, moderator: Any) -> None:
        copy = submit_case(image=altered_jpeg())
        original = hashes_of(original_jpeg())
        assert _found(moderator, hash=original.pdq, distance=0) == set()
        assert _found(moderator, hash=original.pdq, distance=31) == {copy.pk}

    def test_an_exact_pdq_says_so(self, moderator: Any) -> None:
        case = submit_case(image=original_jpeg())
        pdq = Media.objects.get(item__case=case).pdq
        assert CaseSearch(moderator, pdq).reasons([case.pk])[case.pk] == ["PDQ exact"]

    def test_a_low_quality_pdq_matches_only_exactly(self, moderator: Any) -> None:
        copy = submit_case(image=altered_jpeg())
        Media.objects.filter(item__case=copy).update(pdq_quality=10)
        media = Media.objects.get(item__case=copy)
        original = hashes_of(original_jpeg())
        assert _found(moderator, hash=original.pdq) == set()
        assert _found(moderator, hash=media.pdq) == {copy.pk}

    def test_the_database_and_the_numpy_scan_agree(self) -> None:
        copy = submit_case(image=altered_jpeg())
        exact = submit_case(image=original_jpeg())
        submit_case(image=original_jpeg(UNRELATED_SEED))
        low = submit_case(image=altered_jpeg())
        Media.objects.filter(item__case=low).update(pdq_quality=10)
        pdq = hashes_of(original_jpeg()).pdq
        media = Media.objects.all()
        in_sql = pdq_near_sql(media, pdq, 31)
        in_numpy = pdq_near_scan(media, pdq, 31, chunk_size=2)
        assert in_sql == in_numpy
        assert in_sql[exact.pk] == 0 and 0 < in_sql[copy.pk] <= 31 and low.pk not in in_sql


@pytest.mark.django_db
@pytest.mark.postgres
class RestrictedCaseTests:
    """Search never shows a restricted case to a moderator, not even in a count."""

    @pytest.fixture
    def restricted(self, lead: Any) -> Case:
        case = submit_case(
            image=original_jpeg(),
            text="restricted harbour words",
            subject_username="hidden_heron",
            external_id="r-1",
        )
        case_restrict(case=case, actor=lead)
        return case

    def _all_ways(self, case: Case) -> list[tuple[str, dict[str, Any]]]:
        media = Media.objects.get(item__case=case)
        return [
            ("harbour", {}),
            (case.reference, {}),
            ("", {"reference": case.reference}),
            ("hidden_heron", {}),
            ("", {"subject": "hidden_heron"}),
            ("", {"external_id": "r-1"}),
            (media.sha256, {}),
            ("", {"hash": media.pdq}),
            ("", {"hash": hashes_of(altered_jpeg()).pdq}),
            ("", {"status": "open"}),
        ]

    def test_a_moderator_never_finds_it(self, moderator: Any, restricted: Case) -> None:
        for query, filters in self._all_ways(restricted):
            search = CaseSearch(moderator, query, SearchFilters(**filters))
            page, hits = search.page(1)
            assert page.paginator.count == 0, (query, filters)
            assert hits == []

    def test_a_lead_finds_it_every_way(self, lead: Any, restricted: Case) -> None:
        for query, filters in self._all_ways(restricted):
            assert restricted.pk in _found(lead, query, **filters), (query, filters)

    def test_a_moderator_granted_the_case_finds_it(self, moderator: Any, restricted: Case) -> None:
        assign_perm("moderation.work_restricted_case", moderator, restricted)
        assert _found(moderator, "harbour") == {restricted.pk}

    def test_an_outsider_finds_nothing(self, outsider: Any) -> None:
        submit_case(text="harbour")
        assert _found(outsider, "harbour") == set()


@pytest.mark.django_db
class FallbackTests:
    """The embedded database's paths, called directly (they run on any database)."""

    def test_text_fallback_is_a_case_insensitive_substring(self) -> None:
        wanted = submit(text="Meet me at the HARBOUR at nine", subject_username="Gull_42")
        submit(text="nothing to see")
        items = Item.objects.all()
        assert list(items_matching_text_fallback(items, " harbour ", "text")) == [wanted]
        assert list(items_matching_text_fallback(items, "at the harb", "text")) == [wanted]
        assert list(items_matching_text_fallback(items, "gull_4", "subject_username")) == [wanted]
        assert not items_matching_text_fallback(items, "harbour", "subject_username").exists()
        both = items_matching_text_fallback(items, "GULL", "text", "subject_username")
        assert list(both) == [wanted]

    def test_numpy_scan_finds_the_altered_copy_only(self) -> None:
        copy = submit_case(image=altered_jpeg())
        submit_case(image=original_jpeg(UNRELATED_SEED))
        submit(text="no media")
        found = pdq_near_scan(Media.objects.all(), hashes_of(original_jpeg()).pdq, 31)
        assert list(found) == [copy.pk]

    @pytest.mark.postgres
    def test_full_text_does_not_match_word_fragments(self) -> None:
        """Where the two paths differ: full-text search matches words, not substrings."""
        submit(text="harbourside")
        items = Item.objects.all()
        assert not items_matching_text_fts(items, "harbour", "text").exists()
        assert items_matching_text_fallback(items, "harbour", "text").exists()


def test_only_set_filters_count_as_narrowing() -> None:
    assert SearchFilters(received_from=date(2025, 1, 2)).narrows
    assert not SearchFilters().narrows
