"""Notifications (moderation.services.notifications) are recorded before they are sent, sent at
most once per key, and never carry media or content."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from django.core import mail

from core import outbound
from core.models import AuditEvent
from moderation.models import EscalationRule, Notification, OnCallShift
from moderation.services.escalations import case_mark_immediate_risk
from moderation.services.notifications import notification_send, rule_notify
from moderation.services.paging import escalation_page
from tests.moderation.factories import make_case, make_item, make_rule


def _on_call(lead: Any) -> None:
    for weekday in range(7):
        OnCallShift.objects.create(
            user=lead, weekday=weekday, starts="00:00", ends="23:59:59", tier=1
        )


@pytest.mark.django_db
class NotificationSendTests:
    def test_the_row_is_recorded_before_the_send_and_marked_after(self, settings: Any) -> None:
        seen_at_send: list[str] = []

        def send(url: str, body: Any, headers: Any) -> outbound.OutboundResponse:
            seen_at_send.append(Notification.objects.get(key="k1").status)
            return outbound.OutboundResponse(200, "")

        with mock.patch.object(outbound, "send", side_effect=send):
            note, sent = notification_send(
                key="k1",
                channel="webhook",
                to=["https://chat.example/hook"],
                subject="s",
                body="",
                payload={"event": "test"},
            )
        assert seen_at_send == ["pending"]
        assert sent and note.status == "sent" and note.sent_at is not None
        verbs = list(
            AuditEvent.objects.filter(object_id=str(note.pk)).values_list("verb", flat=True)
        )
        assert sorted(verbs) == ["notification.recorded", "notification.sent"]

    def test_the_same_key_never_sends_twice(self) -> None:
        for _ in range(3):
            notification_send(
                key="k2", channel="email", to=["lead@example.org"], subject="s", body="b"
            )
        assert len(mail.outbox) == 1
        assert Notification.objects.filter(key="k2").count() == 1

    def test_a_send_that_died_midway_is_not_repeated(self) -> None:
        Notification.objects.create(
            key="k3", channel="email", recipient="lead@example.org", subject="s", body="b"
        )  # pending: the sender died between recording and marking
        note, sent = notification_send(
            key="k3", channel="email", to=["lead@example.org"], subject="s", body="b"
        )
        assert not sent and note.status == "pending" and mail.outbox == []

    def test_a_failed_send_is_recorded_with_its_error(self) -> None:
        failure = outbound.OutboundError("HTTP 502", status=502)
        with mock.patch.object(outbound, "send", side_effect=failure):
            note, sent = notification_send(
                key="k4",
                channel="webhook",
                to=["https://chat.example/hook"],
                subject="s",
                body="",
                payload={},
            )
        assert not sent and note.status == "failed" and "502" in note.error


@pytest.mark.django_db
class RedeliveredTaskTests:
    def test_a_redelivered_paging_task_sends_once(self, lead: Any, settings: Any) -> None:
        settings.SAFEGUARD_PAGING_WEBHOOK_URL = "https://pager.example/hook"
        _on_call(lead)
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=lead, reason="test"
        )
        hooks: list[Any] = []
        with mock.patch.object(
            outbound,
            "send",
            side_effect=lambda url, body, headers: (
                hooks.append(body) or outbound.OutboundResponse(200, "")
            ),
        ):
            assert escalation_page(escalation_id=escalation.pk, page=1) == 2
            # acks_late: the broker delivers the same message again (the worker died before
            # acknowledging it) — before and after the page was counted.
            assert escalation_page(escalation_id=escalation.pk, page=1) == 0
            assert escalation_page(escalation_id=escalation.pk, page=1) == 0
        assert len(mail.outbox) == 1 and len(hooks) == 1
        escalation.refresh_from_db()
        assert escalation.page_count == 1
        assert escalation.notifications.filter(status="sent").count() == 2

    def test_a_page_that_died_before_it_was_counted_is_counted_without_resending(
        self, lead: Any
    ) -> None:
        _on_call(lead)
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=lead, reason="test"
        )
        assert escalation_page(escalation_id=escalation.pk, page=1) == 1
        type(escalation).objects.filter(pk=escalation.pk).update(page_count=0)  # not counted
        assert escalation_page(escalation_id=escalation.pk, page=1) == 0
        escalation.refresh_from_db()
        assert escalation.page_count == 1 and len(mail.outbox) == 1

    def test_a_redelivered_rule_notification_sends_once(self, admin_user: Any) -> None:
        case = make_case(kind="message")
        rule = EscalationRule.objects.create(
            name="tell the team",
            conditions=[{"field": "item.kind", "op": "eq", "value": "message"}],
            actions=[{"type": "notify", "channel": "email", "to": "team@example.org"}],
        )
        for _ in range(2):
            rule_notify(case_id=case.pk, rule_id=rule.pk, channel="email", to="team@example.org")
        assert len(mail.outbox) == 1
        assert Notification.objects.filter(recipient="team@example.org").count() == 1


@pytest.mark.django_db
class NotificationContentTests:
    def test_no_notification_carries_media_or_content(
        self, admin_user: Any, lead: Any, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_PAGING_WEBHOOK_URL = "https://pager.example/hook"
        make_rule(
            admin_user,
            "notify",
            [{"field": "item.kind", "op": "eq", "value": "image"}],
            [
                {"type": "notify", "channel": "webhook", "to": "https://chat.example/hook"},
                {"type": "notify", "channel": "email", "to": "team@example.org"},
                {"type": "mark_immediate_risk"},
            ],
        )
        sent: list[dict[str, Any]] = []
        with (
            mock.patch.object(
                outbound,
                "send",
                side_effect=lambda url, body, headers: (
                    sent.append(body) or outbound.OutboundResponse(200, "")
                ),
            ),
            django_capture_on_commit_callbacks(execute=True),
        ):
            item = make_item(kind="image")
        media = item.media
        texts = (
            [json.dumps(b) for b in sent]
            + [m.body + m.subject for m in mail.outbox]
            + [n.body for n in Notification.objects.all()]
        )
        assert len(sent) >= 2 and mail.outbox
        for text in texts:
            assert media.sha256 not in text and "synthetic text" not in text
            assert "/media/" not in text and "base64" not in text
        assert Notification.objects.filter(status="sent").count() >= 3
