"""Notification tasks: a rule's notify action."""

from __future__ import annotations

from celery import shared_task

from moderation.services.notifications import rule_notify


@shared_task(name="moderation.send_rule_notification", acks_late=True)
def send_rule_notification_task(case_id: int, rule_id: int, channel: str, to: str) -> None:
    rule_notify(case_id=case_id, rule_id=rule_id, channel=channel, to=to)
