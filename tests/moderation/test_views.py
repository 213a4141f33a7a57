"""The queue page: order, SLA countdown and breaches, filters, keyset pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from moderation import selectors
from moderation.models import Case
from tests.conftest import client_for
from tests.moderation.factories import make_case


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

    def test_keyset_pagination_walks_every_case_once_in_queue_order(
        self, moderator: Any, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(selectors, "QUEUE_PAGE_SIZE", 3)
        from moderation import views

        monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 3)
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
