"""Reviewing: media hidden by default, reveal with a reason (logged, counted), decide, bulk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from core import outbound
from core.audit import SystemActor
from core.models import AuditEvent
from moderation.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.models import Case, Decision, Media, Reveal, WebhookDelivery
from moderation.queue import case_claim_next
from moderation.review import exposure_for, exposure_lift
from moderation.webhooks import sign
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_item

IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"GIF8",
    b"RIFF",
    b"\x00\x00\x00\x18ftyp",
    b"\x1aE\xdf\xa3",
)


def _claimed_image_case(user: Any, **kwargs: Any) -> tuple[Case, Media]:
    case = make_case(kind="image", **kwargs)
    claimed = case_claim_next(user=user)
    assert claimed is not None and claimed.pk == case.pk
    return claimed, Media.objects.get(item__case=case)


def _reveal(client: Client, case: Case, media: Media, reason: str = "need to assess") -> Any:
    return client.post(f"/cases/{case.pk}/media/{media.pk}/reveal", {"reason": reason})


@pytest.mark.django_db
class RevealTests:
    def test_the_case_page_shows_metadata_and_hashes_but_no_media(self, moderator: Any) -> None:
        case, media = _claimed_image_case(moderator)
        response = client_for(moderator).get(f"/cases/{case.pk}/")
        html = response.content.decode()
        assert response.status_code == 200
        assert media.sha256 in html and "Media is hidden" in html
        assert f'"/media/{media.pk}"' not in html  # no link to the bytes until revealed
        assert (
            response["Cache-Control"].startswith("max-age=0")
            or "no-cache" in response["Cache-Control"]
        )

    def test_a_reveal_needs_a_reason(self, moderator: Any) -> None:
        case, media = _claimed_image_case(moderator)
        client = client_for(moderator)
        response = _reveal(client, case, media, reason="  ")
        assert response.status_code == 400 and "reason" in response.json()["error"]
        assert not Reveal.objects.exists()
        assert client.get(f"/media/{media.pk}").status_code == 404

    def test_a_reveal_is_logged_and_opens_the_media_view_briefly(
        self, moderator: Any, settings: Any
    ) -> None:
        case, media = _claimed_image_case(moderator)
        client = client_for(moderator)
        body = _reveal(client, case, media).json()
        assert body["url"] == f"/media/{media.pk}" and body["reveals_today"] == 1
        reveal = Reveal.objects.get()
        assert (reveal.user, reveal.media, reveal.reason) == (moderator, media, "need to assess")
        response = client.get(body["url"])
        assert response.status_code == 200
        assert {"no-store", "private"} <= set(response["Cache-Control"].replace(" ", "").split(","))
        assert b"".join(response.streaming_content) == Path(media.file.path).read_bytes()
        verbs = list(AuditEvent.objects.values_list("verb", flat=True))
        assert "media.revealed" in verbs and "media.viewed" in verbs
        settings.SAFEGUARD_REVEAL_WINDOW_SECONDS = 0
        assert client.get(body["url"]).status_code == 404  # the window closed

    def test_the_media_view_is_denied_to_outsiders_others_and_on_restricted_cases(
        self, moderator: Any, moderator2: Any, outsider: Any, lead: Any
    ) -> None:
        case, media = _claimed_image_case(moderator)
        assert client_for(outsider).get(f"/media/{media.pk}").status_code == 403
        assert client_for(moderator2).get(f"/media/{media.pk}").status_code == 404
        assert Client().get(f"/media/{media.pk}").status_code == 302
        Case.objects.filter(pk=case.pk).update(restricted=True, claimed_by=lead)
        assert _reveal(client_for(moderator2), case, media).status_code == 404
        assert client_for(moderator2).get(f"/cases/{case.pk}/").status_code == 404
        assert _reveal(client_for(lead), case, media).status_code == 200

    def test_soft_limit_prompts_a_break_and_hard_limit_blocks_until_a_lead_lifts_it(
        self, moderator: Any, lead: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_REVEAL_SOFT_LIMIT = 2
        settings.SAFEGUARD_REVEAL_HARD_LIMIT = 3
        case, media = _claimed_image_case(moderator)
        client = client_for(moderator)
        assert _reveal(client, case, media).json()["needs_break"] is False
        assert _reveal(client, case, media).json()["needs_break"] is True
        assert _reveal(client, case, media).status_code == 200
        refused = _reveal(client, case, media)
        assert refused.status_code == 400 and "limit" in refused.json()["error"]
        assert exposure_for(moderator).blocked
        exposure_lift(user=moderator, lead=lead, extra_reveals=2, reason="urgent backlog")
        assert _reveal(client, case, media).status_code == 200
        assert AuditEvent.objects.filter(verb="exposure.limit_lifted").exists()

    def test_leads_see_aggregates_only(self, moderator: Any, lead: Any) -> None:
        case, media = _claimed_image_case(moderator)
        _reveal(client_for(moderator), case, media)
        html = client_for(lead).get("/exposure/").content.decode()
        assert "Reveals" in html and moderator.username not in html.split("<form")[0]
        assert client_for(moderator).get("/exposure/").status_code == 403


@pytest.mark.django_db
class DecisionTests:
    def test_a_holder_decides_and_the_case_closes_with_principles(self, moderator: Any) -> None:
        case, _ = _claimed_image_case(moderator, category="grooming")
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

    def test_deciding_a_case_you_dont_hold_is_refused_and_records_nothing(
        self, moderator: Any, moderator2: Any
    ) -> None:
        case, _ = _claimed_image_case(moderator)
        response = client_for(moderator2).post(
            f"/api/v1/cases/{case.pk}/decision", {"outcome": "no_violation"}, format="json"
        )
        assert response.status_code == 409
        assert "don't hold" in response.json()["error"]["message"]
        assert not Decision.objects.exists()

    def test_a_stale_form_after_the_lease_expired_records_nothing(self, moderator: Any) -> None:
        from moderation.queue import case_expire_leases

        case, _ = _claimed_image_case(moderator)
        stale = case.claimed_at.isoformat()
        from django.utils import timezone

        case_expire_leases(now=timezone.now() + timezone.timedelta(hours=1))
        case_claim_next(user=moderator)  # claimed again: a new hold
        response = client_for(moderator).post(
            f"/cases/{case.pk}/decide",
            {"outcome": "no_violation", "claimed_at": stale},
            follow=True,
        )
        assert "earlier hold" in response.content.decode()
        assert not Decision.objects.exists()

    def test_invalid_outcomes_and_categories_get_400(self, moderator: Any) -> None:
        case, _ = _claimed_image_case(moderator)
        client = client_for(moderator)
        url = f"/api/v1/cases/{case.pk}/decision"
        assert client.post(url, {"outcome": "vaporise"}, format="json").status_code == 400
        assert (
            client.post(
                url, {"outcome": "remove", "categories": ["nope"]}, format="json"
            ).status_code
            == 400
        )
        response = client.post(url, {"outcome": "remove"}, format="json")
        assert response.status_code == 400 and "category" in str(response.json())
        assert not Decision.objects.exists()

    def test_escalating_sends_the_case_to_the_leads(self, moderator: Any, lead: Any) -> None:
        case, _ = _claimed_image_case(moderator, category="search_abuse")
        response = client_for(moderator).post(
            f"/api/v1/cases/{case.pk}/decision",
            {"outcome": "escalate", "categories": ["grooming"], "rationale": "looks like contact"},
            format="json",
        )
        assert response.status_code == 201
        case.refresh_from_db()
        assert case.status == "open" and case.restricted and case.priority == 1
        assert case_claim_next(user=moderator) is None
        assert case_claim_next(user=lead).pk == case.pk


@pytest.mark.django_db
class KnownMaterialTests:
    def test_known_material_cases_are_actioned_in_bulk_without_any_reveal(
        self, moderator: Any, tmp_path: Path
    ) -> None:
        import hashlib

        from moderation.media.synthetic import synthetic_jpeg

        data = synthetic_jpeg(77, 160, 120, quality=80)
        hl, _ = hash_list_upsert(
            name="V", algorithm="sha256", verified=True, actor=SystemActor("t")
        )
        imp = hash_import_create(
            hash_list=hl,
            filename="v.csv",
            actor=SystemActor("t"),
            content=f"{hashlib.sha256(data).hexdigest()},A\n".encode(),
        )
        hash_import_run(import_id=imp.pk)
        from moderation.pipeline import media_hash

        known = make_case(kind="image", seed=77)
        other = make_case(kind="image", seed=78)
        for media in Media.objects.all():
            media_hash(media_id=media.pk)
        client = client_for(moderator)
        page = client.get("/queue/known-material").content.decode()
        assert known.reference in page and other.reference not in page
        response = client.post(
            "/queue/known-material/decide", {"case": [known.pk], "outcome": "remove_and_report"}
        )
        assert response.status_code == 302
        decision = Decision.objects.get(case=known)
        assert decision.bulk and decision.outcome == "remove_and_report"
        assert not Reveal.objects.exists()
        other.refresh_from_db()
        assert other.status == "open"


@pytest.mark.django_db
class WebhookTests:
    def test_a_decision_is_delivered_signed_after_commit(
        self, moderator: Any, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_DECISION_WEBHOOK_URL = "https://platform.example/hook"
        settings.SAFEGUARD_WEBHOOK_SECRET = "s3cret"
        case, _ = _claimed_image_case(moderator)
        sent: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        with (
            mock.patch.object(
                outbound,
                "send",
                side_effect=lambda url, body, headers: (
                    sent.append((url, body, headers)) or outbound.OutboundResponse(200, "ok")
                ),
            ),
            django_capture_on_commit_callbacks(execute=True),
        ):
            client_for(moderator).post(
                f"/api/v1/cases/{case.pk}/decision", {"outcome": "no_violation"}, format="json"
            )
        [(url, body, headers)] = sent
        assert url == "https://platform.example/hook"
        expected = sign(body, secret="s3cret", timestamp=int(headers["X-Safeguard-Timestamp"]))
        assert headers["X-Safeguard-Signature"] == f"sha256={expected}"
        assert body["outcome"] == "no_violation" and body["case_id"] == case.pk
        assert WebhookDelivery.objects.get().status == "delivered"
        text = json.dumps(body)
        assert "media" not in text and "sha256" not in text

    def test_failures_are_retried_with_backoff_then_given_up_and_logged(
        self, moderator: Any, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        from django.utils import timezone

        from moderation.tasks import retry_webhooks

        settings.SAFEGUARD_DECISION_WEBHOOK_URL = "https://platform.example/hook"
        settings.SAFEGUARD_WEBHOOK_SECRET = "s3cret"
        settings.SAFEGUARD_WEBHOOK_MAX_ATTEMPTS = 3
        case, _ = _claimed_image_case(moderator)
        calls: list[float] = []

        def failing(url: str, body: Any, headers: Any) -> Any:
            calls.append(1)
            raise outbound.OutboundError("HTTP 503", status=503)

        with mock.patch.object(outbound, "send", side_effect=failing):
            with django_capture_on_commit_callbacks(execute=True):
                client_for(moderator).post(
                    f"/api/v1/cases/{case.pk}/decision", {"outcome": "no_violation"}, format="json"
                )
            delivery = WebhookDelivery.objects.get()
            gaps = []
            while delivery.status == "pending":
                gaps.append((delivery.next_attempt_at - timezone.now()).total_seconds())
                assert retry_webhooks() == 0  # not due yet: beat leaves it alone
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    next_attempt_at=timezone.now()
                )
                assert retry_webhooks() == 1  # due: beat re-attempts it
                delivery.refresh_from_db()
        assert len(calls) == 3 and delivery.attempts == 3
        assert gaps[1] > gaps[0] * 1.5  # exponential backoff
        assert delivery.status == "failed" and delivery.last_status_code == 503
        verbs = list(
            AuditEvent.objects.filter(verb__startswith="webhook.")
            .order_by("id")
            .values_list("verb", flat=True)
        )
        assert verbs == ["webhook.retrying", "webhook.retrying", "webhook.failed"]

    def test_a_client_error_is_not_retried(
        self, moderator: Any, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_DECISION_WEBHOOK_URL = "https://platform.example/hook"
        settings.SAFEGUARD_WEBHOOK_SECRET = "s3cret"
        case, _ = _claimed_image_case(moderator)
        error = outbound.OutboundError("HTTP 400", status=400, retryable=False)
        with (
            mock.patch.object(outbound, "send", side_effect=error),
            django_capture_on_commit_callbacks(execute=True),
        ):
            client_for(moderator).post(
                f"/api/v1/cases/{case.pk}/decision", {"outcome": "no_violation"}, format="json"
            )
        assert WebhookDelivery.objects.get().status == "failed"


@pytest.mark.django_db
class NoMediaLeavesTheSystemTests:
    """No media bytes in any response except the audited media view."""

    def test_no_page_or_api_response_carries_image_bytes(
        self, moderator: Any, lead: Any, admin_user: Any, platform_client: Any
    ) -> None:
        case, media = _claimed_image_case(moderator)
        make_item(kind="text")
        raw = Path(media.file.path).read_bytes()
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
