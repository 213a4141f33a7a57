"""The queue views: the queue page (order, SLA countdown and breaches, filters, keyset
pagination) and known material, actioned in bulk without a reveal."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from moderation import selectors
from moderation.models import Case, Decision, Media, Reveal
from moderation.services.hashing import media_hash
from moderation.views import queue
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_known_material_cases


@pytest.mark.django_db
class QueuePageTests:
    def test_it_shows_the_sla_countdown_and_marks_breaches(self, moderator: Any) -> None:
        due_soon = make_case(kind="message", category="grooming")
        late = make_case(kind="message", category="search_abuse")
        Case.objects.filter(pk=due_soon.pk).update(
            sla_due_at=timezone.now() + timedelta(minutes=50)
        )
        Case.objects.filter(pk=late.pk).update(sla_due_at=timezone.now() - timedelta(hours=2))
        html = client_for(moderator).get("/queue/").content.decode()
        assert "49\xa0minutes" in html or "50\xa0minutes" in html
        assert "breached 2\xa0hours" in html
        assert html.index(due_soon.reference) < html.index(late.reference)  # P1 before P4

    def test_next_while_holding_a_case_returns_to_it_and_says_so(self, moderator: Any) -> None:
        first = make_case(kind="message", category="grooming")
        make_case(kind="message", category="grooming")
        client = client_for(moderator)
        response = client.post("/queue/next")
        assert response.url == f"/cases/{first.pk}/"
        response = client.post("/queue/next", follow=True)
        assert response.redirect_chain[-1][0] == f"/cases/{first.pk}/"
        assert f"You still hold case {first.reference}" in response.content.decode()
        assert Case.objects.filter(claimed_by=moderator).count() == 1

    def test_keyset_pagination_walks_every_case_once_in_queue_order(
        self, moderator: Any, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(selectors, "QUEUE_PAGE_SIZE", 3)
        monkeypatch.setattr(queue, "QUEUE_PAGE_SIZE", 3)
        cases = [
            make_case(kind="message", category=c)
            for c in (
                "grooming",
                "search_abuse",
                "child_safety_risk",
                "not_illegal_on_face",
                "grooming",
                "search_abuse",
                "livestream",
            )
        ]
        client = client_for(moderator)
        seen: list[str] = []
        url = "/queue/"
        for _ in range(5):
            response = client.get(url)
            refs = [c.reference for c in cases if c.reference in response.content.decode()]
            page = sorted(refs, key=lambda r: response.content.decode().index(r))
            seen.extend(page)
            next_link = response.context["next_after"]
            if not next_link:
                break
            url = f"/queue/?after={next_link}"
        assert sorted(seen) == sorted(c.reference for c in cases) and len(seen) == len(cases)
        expected = [c.reference for c in Case.objects.order_by("priority", "sla_due_at", "id")]
        assert seen == expected

    def test_filters_narrow_the_queue(self, moderator: Any) -> None:
        grooming = make_case(kind="message", category="grooming")
        other = make_case(kind="message", category="search_abuse")
        html = client_for(moderator).get("/queue/?category=grooming").content.decode()
        assert grooming.reference in html and other.reference not in html
        html = client_for(moderator).get("/queue/?priority=4").content.decode()
        assert other.reference in html and grooming.reference not in html


@pytest.mark.django_db
class KnownMaterialTests:
    def test_known_material_cases_are_actioned_in_bulk_without_any_reveal(
        self, moderator: Any, tmp_path: Path
    ) -> None:
        known = make_known_material_cases(77)[0]
        other = make_case(kind="image", seed=78)
        media_hash(media_id=Media.objects.get(item__case=other).pk)
        client = client_for(moderator)
        page = client.get("/queue/known-material").content.decode()
        assert known.reference in page and other.reference not in page
        assert f'href="/cases/{known.pk}/"' in page
        assert "V · sha256 · distance 0 · provider category A" in page  # the evidence
        assert not re.search(r'<input[^>]*name="case"[^>]*checked', page)  # none pre-selected
        unconfirmed = client.post(
            "/queue/known-material/decide",
            {"case": [known.pk], "outcome": "remove_and_report"},
            follow=True,
        )
        assert "Confirm that you checked the match evidence." in unconfirmed.content.decode()
        assert not Decision.objects.exists()
        response = client.post(
            "/queue/known-material/decide",
            {"case": [known.pk], "outcome": "remove_and_report", "confirm": "on"},
        )
        assert response.status_code == 302
        decision = Decision.objects.get(case=known)
        assert decision.bulk and decision.outcome == "remove_and_report"
        assert not Reveal.objects.exists()
        other.refresh_from_db()
        assert other.status == "open"
