"""The case views: the case page hides media, reveals need a reason and are counted, the media
view opens briefly and only for the holder, decisions come from the holder's current claim; and
no page or API response carries media bytes except that audited media view."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from core.evidence_crypto import evidence_read_bytes
from core.models import AuditEvent
from moderation.models import Case, Decision, Reveal
from moderation.services.exposure import exposure_for, exposure_lift
from moderation.services.queue import case_claim_next, case_expire_leases
from tests.conftest import client_for
from tests.moderation.factories import make_claimed_image_case, make_item, reveal_in_console

IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"GIF8",
    b"RIFF",
    b"\x00\x00\x00\x18ftyp",
    b"\x1aE\xdf\xa3",
)


@pytest.mark.django_db
class CasePageTests:
    def test_the_case_page_shows_metadata_and_hashes_but_no_media(self, moderator: Any) -> None:
        case, media = make_claimed_image_case(moderator)
        response = client_for(moderator).get(f"/cases/{case.pk}/")
        html = response.content.decode()
        assert response.status_code == 200
        assert media.sha256 in html and "Media is hidden" in html
        assert f'"/media/{media.pk}"' not in html  # no link to the bytes until revealed
        assert (
            response["Cache-Control"].startswith("max-age=0")
            or "no-cache" in response["Cache-Control"]
        )


@pytest.mark.django_db
class RevealTests:
    def test_a_reveal_needs_a_reason(self, moderator: Any) -> None:
        case, media = make_claimed_image_case(moderator)
        client = client_for(moderator)
        response = reveal_in_console(client, case, media, reason="  ")
        assert response.status_code == 400 and "reason" in response.json()["error"]
        assert not Reveal.objects.exists()
        assert client.get(f"/media/{media.pk}").status_code == 404

    def test_a_reveal_is_logged_and_opens_the_media_view_briefly(
        self, moderator: Any, settings: Any
    ) -> None:
        case, media = make_claimed_image_case(moderator)
        client = client_for(moderator)
        body = reveal_in_console(client, case, media).json()
        assert body["url"] == f"/media/{media.pk}" and body["reveals_today"] == 1
        reveal = Reveal.objects.get()
        assert (reveal.user, reveal.media, reveal.reason) == (moderator, media, "need to assess")
        response = client.get(body["url"])
        assert response.status_code == 200
        assert {"no-store", "private"} <= set(response["Cache-Control"].replace(" ", "").split(","))
        assert b"".join(response.streaming_content) == evidence_read_bytes(media.file.path)
        verbs = list(AuditEvent.objects.values_list("verb", flat=True))
        assert "media.revealed" in verbs and "media.viewed" in verbs
        settings.SAFEGUARD_REVEAL_WINDOW_SECONDS = 0
        assert client.get(body["url"]).status_code == 404  # the window closed

    def test_soft_limit_prompts_a_break_and_hard_limit_blocks_until_a_lead_lifts_it(
        self, moderator: Any, lead: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_REVEAL_SOFT_LIMIT = 2
        settings.SAFEGUARD_REVEAL_HARD_LIMIT = 3
        case, media = make_claimed_image_case(moderator)
        client = client_for(moderator)
        assert reveal_in_console(client, case, media).json()["needs_break"] is False
        assert reveal_in_console(client, case, media).json()["needs_break"] is True
        assert reveal_in_console(client, case, media).status_code == 200
        refused = reveal_in_console(client, case, media)
        assert refused.status_code == 400 and "limit" in refused.json()["error"]
        assert exposure_for(moderator).blocked
        exposure_lift(user=moderator, lead=lead, extra_reveals=2, reason="urgent backlog")
        assert reveal_in_console(client, case, media).status_code == 200
        assert AuditEvent.objects.filter(verb="exposure.limit_lifted").exists()


@pytest.mark.django_db
class MediaViewTests:
    def test_the_media_view_is_denied_to_outsiders_others_and_on_restricted_cases(
        self, moderator: Any, moderator2: Any, outsider: Any, lead: Any
    ) -> None:
        case, media = make_claimed_image_case(moderator)
        assert client_for(outsider).get(f"/media/{media.pk}").status_code == 403
        assert client_for(moderator2).get(f"/media/{media.pk}").status_code == 404
        assert Client().get(f"/media/{media.pk}").status_code == 302
        Case.objects.filter(pk=case.pk).update(restricted=True, claimed_by=lead)
        assert reveal_in_console(client_for(moderator2), case, media).status_code == 404
        assert client_for(moderator2).get(f"/cases/{case.pk}/").status_code == 404
        assert reveal_in_console(client_for(lead), case, media).status_code == 200


@pytest.mark.django_db
class DecideViewTests:
    def test_a_holder_decides_and_the_case_closes_with_principles(self, moderator: Any) -> None:
        case, _ = make_claimed_image_case(moderator, category="grooming")
        response = client_for(moderator).post(
            f"/cases/{case.pk}/decide",
            {
                "outcome": "remove_and_report",
                "categories": ["grooming"],
                "rationale": "adult asked a child to keep secrets",
                "claimed_at": case.claimed_at.isoformat(),
            },
        )
        assert response.status_code == 302
        decision = Decision.objects.get()
        assert decision.principles == [3, 7, 12]
        case.refresh_from_db()
        assert case.status == "decided" and case.claimed_by is None
        assert AuditEvent.objects.filter(verb="decision.recorded").exists()

    def test_a_stale_form_after_the_lease_expired_records_nothing(self, moderator: Any) -> None:
        case, _ = make_claimed_image_case(moderator)
        stale = case.claimed_at.isoformat()
        case_expire_leases(now=timezone.now() + timezone.timedelta(hours=1))
        case_claim_next(user=moderator)  # claimed again: a new hold
        response = client_for(moderator).post(
            f"/cases/{case.pk}/decide",
            {"outcome": "no_violation", "claimed_at": stale},
            follow=True,
        )
        assert "earlier hold" in response.content.decode()
        assert not Decision.objects.exists()


@pytest.mark.django_db
class NoMediaLeavesTheSystemTests:
    """No media bytes in any response except the audited media view."""

    def test_no_page_or_api_response_carries_image_bytes(
        self, moderator: Any, lead: Any, admin_user: Any, platform_client: Any
    ) -> None:
        case, media = make_claimed_image_case(moderator)
        make_item(kind="text")
        raw = evidence_read_bytes(media.file.path)
        responses = []
        for user in (moderator, lead, admin_user):
            client = client_for(user)
            for url in (
                "/",
                "/queue/",
                f"/cases/{case.pk}/",
                "/hash-lists/",
                "/queue/known-material",
                f"/api/v1/cases/{case.pk}",
                f"/api/v1/items/{media.item_id}",
                "/api/v1/principles",
                "/api/schema/",
                "/exposure/",
            ):
                responses.append((url, client.get(url)))
        responses.append(("platform", platform_client.get(f"/api/v1/items/{media.item_id}")))
        for url, response in responses:
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert raw[:64] not in body, url
            assert not any(body.startswith(sig) for sig in IMAGE_SIGNATURES), url
            assert "image/" not in response.get("Content-Type", ""), url
