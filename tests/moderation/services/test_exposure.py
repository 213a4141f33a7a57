"""Reveals (moderation.services.exposure): a decided case's media, revealed again by someone who
has seen it, needs an explicit confirmation as well as a reason."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import AuditEvent
from moderation.models import Case, Media, Reveal
from moderation.services.exposure import (
    RepeatRevealUnconfirmed,
    RevealRefused,
    media_reveal,
    repeat_reveals,
)
from moderation.services.review import decision_record
from principles.models import HarmCategory
from tests.moderation.factories import make_claimed_image_case


def _decide(case: Case, moderator: Any) -> None:
    decision_record(
        case=case,
        moderator=moderator,
        outcome="remove",
        categories=[HarmCategory.objects.get(code="new_csam")],
        rationale="synthetic",
    )


@pytest.fixture
def decided(moderator: Any) -> tuple[Case, Media]:
    """A decided image case whose media the moderator revealed once while deciding."""
    case, media = make_claimed_image_case(moderator, category="new_csam")
    media_reveal(media=media, case=case, user=moderator, reason="assess the image")
    _decide(case, moderator)
    return Case.objects.get(pk=case.pk), media


@pytest.mark.django_db
class RepeatRevealTests:
    def test_revealing_a_decided_cases_media_again_needs_a_confirmation(
        self, moderator: Any, decided: tuple[Case, Media]
    ) -> None:
        case, media = decided
        with pytest.raises(RepeatRevealUnconfirmed) as refused:
            media_reveal(media=media, case=case, user=moderator, reason="check again")
        message = refused.value.message
        assert "This case was decided on" in message and "by mod1" in message
        assert "you have already viewed this media once — reveal again?" in message
        assert Reveal.objects.filter(media=media).count() == 1

    def test_with_the_confirmation_it_reveals_and_audits_the_repeat(
        self, moderator: Any, decided: tuple[Case, Media]
    ) -> None:
        case, media = decided
        media_reveal(
            media=media, case=case, user=moderator, reason="check again", confirm_repeat=True
        )
        assert Reveal.objects.filter(media=media, user=moderator).count() == 2
        event = AuditEvent.objects.filter(verb="media.revealed").order_by("-id").first()
        assert event.data["repeat_confirmed"] is True and event.data["earlier_views"] == 1
        with pytest.raises(RepeatRevealUnconfirmed, match="viewed this media 2 times"):
            media_reveal(media=media, case=case, user=moderator, reason="and again")

    def test_the_confirmation_does_not_replace_the_reason(
        self, moderator: Any, decided: tuple[Case, Media]
    ) -> None:
        case, media = decided
        with pytest.raises(RevealRefused, match="reason is required"):
            media_reveal(media=media, case=case, user=moderator, reason="", confirm_repeat=True)

    def test_a_first_reveal_after_the_decision_needs_no_confirmation(
        self, lead: Any, decided: tuple[Case, Media]
    ) -> None:
        case, media = decided
        media_reveal(media=media, case=case, user=lead, reason="second review")
        with pytest.raises(RepeatRevealUnconfirmed):
            media_reveal(media=media, case=case, user=lead, reason="second look")

    def test_repeat_reveals_before_a_decision_need_no_confirmation(self, moderator: Any) -> None:
        case, media = make_claimed_image_case(moderator, category="new_csam")
        media_reveal(media=media, case=case, user=moderator, reason="assess the image")
        media_reveal(media=media, case=case, user=moderator, reason="look again")
        assert repeat_reveals(case=case, user=moderator) == {}

    def test_it_says_per_media_what_the_case_page_asks(
        self, moderator: Any, lead: Any, decided: tuple[Case, Media]
    ) -> None:
        case, media = decided
        mine = repeat_reveals(case=case, user=moderator)[media.pk]
        assert mine.views == 1 and mine.needs_confirmation
        theirs = repeat_reveals(case=case, user=lead)[media.pk]
        assert theirs.views == 0 and not theirs.needs_confirmation
        assert "asks you to confirm each time" in theirs.question


@pytest.mark.django_db
class HeldCaseTests:
    """The probe: a moderator could reveal and fetch media of a case another moderator held."""

    def test_only_the_holder_or_a_lead_reveals_a_held_cases_media(
        self, moderator: Any, moderator2: Any, lead: Any
    ) -> None:
        from moderation.models import Media
        from moderation.services.exposure import RevealRefused, media_reveal
        from moderation.services.queue import case_claim_next
        from tests.moderation.factories import make_case

        make_case(kind="image")
        case = case_claim_next(user=moderator)
        media = Media.objects.get(item__case=case)
        with pytest.raises(RevealRefused, match="Another moderator holds this case"):
            media_reveal(media=media, case=case, user=moderator2, reason="curious")
        assert media_reveal(media=media, case=case, user=moderator, reason="assess").pk
        assert media_reveal(media=media, case=case, user=lead, reason="supervise").pk
