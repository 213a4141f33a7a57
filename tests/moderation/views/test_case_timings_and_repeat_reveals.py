"""The case page: its Timings block, and the confirmation a decided case's media asks for
before it is revealed again (the reveal endpoint refuses without it)."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.models import Case, Reveal
from moderation.services.review import decision_record
from principles.models import HarmCategory
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_claimed_image_case, reveal_in_console


def _decide(case: Case, moderator: Any) -> None:
    decision_record(
        case=case,
        moderator=moderator,
        outcome="remove",
        categories=[HarmCategory.objects.get(code="new_csam")],
        rationale="synthetic",
    )


@pytest.mark.django_db
class CaseTimingsBlockTests:
    def test_moderators_and_leads_see_the_timings_of_a_case(
        self, moderator: Any, lead: Any
    ) -> None:
        case, _ = make_claimed_image_case(moderator)
        for user in (moderator, lead):
            html = client_for(user).get(f"/cases/{case.pk}/").content.decode()
            assert 'id="timings-h"' in html
            assert "1 hold, one now" in html and "not decided yet" in html

    def test_an_unclaimed_case_says_so(self, moderator: Any) -> None:
        case = make_case(kind="text")
        html = client_for(moderator).get(f"/cases/{case.pk}/").content.decode()
        assert "not claimed yet" in html

    def test_an_outsider_sees_no_case(self, outsider: Any) -> None:
        case = make_case(kind="text")
        assert client_for(outsider).get(f"/cases/{case.pk}/").status_code == 403


@pytest.mark.django_db
class RepeatRevealViewTests:
    def test_the_reveal_endpoint_refuses_a_repeat_without_the_confirmation(
        self, moderator: Any
    ) -> None:
        case, media = make_claimed_image_case(moderator, category="new_csam")
        client = client_for(moderator)
        assert reveal_in_console(client, case, media).status_code == 200
        _decide(Case.objects.get(pk=case.pk), moderator)

        html = client.get(f"/cases/{case.pk}/").content.decode()
        assert "you have already viewed this media once — reveal again?" in html
        assert 'name="confirm_repeat" value="1"' in html

        refused = reveal_in_console(client, case, media, reason="check the outcome")
        assert refused.status_code == 400
        assert "reveal again?" in refused.json()["error"]
        assert Reveal.objects.filter(media=media).count() == 1

        confirmed = client.post(
            f"/cases/{case.pk}/media/{media.pk}/reveal",
            {"reason": "check the outcome", "confirm_repeat": "1"},
        )
        assert confirmed.status_code == 200 and confirmed.json()["url"] == f"/media/{media.pk}"
        assert Reveal.objects.filter(media=media).count() == 2

    def test_an_undecided_case_asks_nothing(self, moderator: Any) -> None:
        case, media = make_claimed_image_case(moderator, category="new_csam")
        client = client_for(moderator)
        reveal_in_console(client, case, media)
        assert 'name="confirm_repeat"' not in client.get(f"/cases/{case.pk}/").content.decode()
        assert reveal_in_console(client, case, media, reason="look again").status_code == 200
