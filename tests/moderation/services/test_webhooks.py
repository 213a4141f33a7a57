"""Decision webhooks (moderation.services.webhooks): signed, sent after commit, retried with
backoff on server errors, given up and logged; client errors are not retried."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from core import outbound
from core.models import AuditEvent
from moderation.models import WebhookDelivery
from moderation.services.webhooks import sign
from moderation.tasks.webhooks import retry_webhooks_task
from tests.conftest import client_for
from tests.moderation.factories import make_claimed_image_case


@pytest.mark.django_db
class WebhookTests:
    def test_a_decision_is_delivered_signed_after_commit(
        self, moderator: Any, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_DECISION_WEBHOOK_URL = "https://platform.example/hook"
        settings.SAFEGUARD_WEBHOOK_SECRET = "s3cret"
        case, _ = make_claimed_image_case(moderator)
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
        settings.SAFEGUARD_DECISION_WEBHOOK_URL = "https://platform.example/hook"
        settings.SAFEGUARD_WEBHOOK_SECRET = "s3cret"
        settings.SAFEGUARD_WEBHOOK_MAX_ATTEMPTS = 3
        case, _ = make_claimed_image_case(moderator)
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
                assert retry_webhooks_task() == 0  # not due yet: beat leaves it alone
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    next_attempt_at=timezone.now()
                )
                # Beat runs outside a transaction, where an enqueue goes out at once; the
                # test's transaction holds it until the block ends.
                with django_capture_on_commit_callbacks(execute=True):
                    assert retry_webhooks_task() == 1  # due: beat re-attempts it
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
        case, _ = make_claimed_image_case(moderator)
        error = outbound.OutboundError("HTTP 400", status=400, retryable=False)
        with (
            mock.patch.object(outbound, "send", side_effect=error),
            django_capture_on_commit_callbacks(execute=True),
        ):
            client_for(moderator).post(
                f"/api/v1/cases/{case.pk}/decision", {"outcome": "no_violation"}, format="json"
            )
        assert WebhookDelivery.objects.get().status == "failed"
