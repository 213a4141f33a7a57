"""Notification tasks: a rule's notify action."""

from __future__ import annotations

from celery import shared_task

from moderation.services.notifications import rule_notify
from moderation.services.quarantine import quarantine_alert


@shared_task(name="moderation.send_rule_notification", acks_late=True)
def send_rule_notification_task(case_id: int, rule_id: int, channel: str, to: str) -> None:
    rule_notify(case_id=case_id, rule_id=rule_id, channel=channel, to=to)


@shared_task(name="moderation.alert_quarantine", acks_late=True)
def alert_quarantine_task(known_hash_id: int, at: str) -> int:
    return quarantine_alert(known_hash_id=known_hash_id, at=at)
