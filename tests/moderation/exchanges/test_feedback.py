"""Feedback to exchanges (moderation.exchanges.feedback): reviewers' verdicts on matches of a
StopNCII hash, sent back through the library — recorded, sent once, failures kept."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.models import AuditEvent
from moderation.exchanges.configure import ExchangeSettings, exchange_update
from moderation.exchanges.feedback import exchange_feedback_export
from moderation.exchanges.fetch import exchange_fetch
from moderation.models import Exchange, ExchangeFeedback, KnownHash, Match
from moderation.services.quarantine import match_verdict_record
from tests.moderation.factories import make_item

from .conftest import CREDENTIALS, connect
from .fake_exchange import STOPNCII_FEEDBACK_KEY, FakeExchange, random_hex

RNG = random.Random(515)


def _listed_match(fake: FakeExchange, **connect_kwargs: Any) -> tuple[Exchange, Match]:
    """A StopNCII exchange whose hash an item matched."""
    value = random_hex(RNG, 64)
    fake["stopncii"].add(100, f"pdq:{value}", hashValue=value)
    exchange = connect(fake, "stopncii", feedback_enabled=True, **connect_kwargs)
    exchange_fetch(exchange_id=exchange.pk)
    known = KnownHash.objects.get(value=value)
    item = make_item(kind="image", seed=RNG.randrange(10**6))
    match = Match.objects.create(
        media=item.media,
        known_hash=known,
        hash_list=known.hash_list,
        algorithm="pdq",
        distance=3,
        list_version=known.hash_list.version,
    )
    exchange.refresh_from_db()
    return exchange, match


@pytest.mark.django_db
class FeedbackTests:
    def test_verdicts_are_sent_once_as_blocked_or_not_blocked(
        self, fake: FakeExchange, lead: Any
    ) -> None:
        exchange, match = _listed_match(fake)
        match_verdict_record(match=match, user=lead, verdict="true_positive")
        assert exchange_feedback_export(exchange_id=exchange.pk) == 1
        assert fake.feedback == [
            {"tags": [], "feedbackValue": "Blocked", "hashValue": match.known_hash.value}
        ]
        row = ExchangeFeedback.objects.get()
        assert (row.status, row.verdict, row.attempts) == ("sent", "true_positive", 1)
        assert exchange_feedback_export(exchange_id=exchange.pk) == 0  # never twice
        match_verdict_record(match=match, user=lead, verdict="false_positive")
        assert exchange_feedback_export(exchange_id=exchange.pk) == 1
        assert fake.feedback[-1]["feedbackValue"] == "NotBlocked"
        assert AuditEvent.objects.filter(verb="exchange.feedback_sent").count() == 2

    def test_verdicts_from_before_feedback_was_enabled_are_not_sent(
        self, fake: FakeExchange, lead: Any
    ) -> None:
        exchange, match = _listed_match(fake)
        exchange_update(
            exchange=exchange,
            settings=_settings_of(exchange, feedback_enabled=False),
            actor=lead,
        )
        match_verdict_record(match=match, user=lead, verdict="true_positive")
        Match.objects.filter(pk=match.pk).update(verdict_at=timezone.now() - timedelta(hours=1))
        exchange.refresh_from_db()
        exchange = exchange_update(
            exchange=exchange, settings=_settings_of(exchange, feedback_enabled=True), actor=lead
        )
        assert exchange_feedback_export(exchange_id=exchange.pk) == 0
        assert fake.feedback == []

    def test_a_refused_send_is_recorded_and_retried(self, fake: FakeExchange, lead: Any) -> None:
        exchange, match = _listed_match(
            fake,
            credentials={**CREDENTIALS["stopncii"], "feedback_function_key": "wrong-key-123"},
        )
        match_verdict_record(match=match, user=lead, verdict="true_positive")
        assert exchange_feedback_export(exchange_id=exchange.pk) == 0
        row = ExchangeFeedback.objects.get()
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.error == "The source refused the credentials (HTTP 401)."
        assert "wrong-key-123" not in str(
            AuditEvent.objects.get(verb="exchange.feedback_failed").data
        )
        exchange_update(
            exchange=exchange,
            settings=_settings_of(exchange),
            credentials={"feedback_function_key": STOPNCII_FEEDBACK_KEY},
            actor=lead,
        )
        assert exchange_feedback_export(exchange_id=exchange.pk) == 1
        row.refresh_from_db()
        assert (row.status, row.attempts, row.error) == ("sent", 2, "")


def _settings_of(exchange: Exchange, **changes: Any) -> ExchangeSettings:
    values = {
        "name": exchange.name,
        "enabled": exchange.enabled,
        "hash_list": exchange.hash_list,
        "category_lists": exchange.category_lists,
        "interval_minutes": exchange.interval_minutes,
        "feedback_enabled": exchange.feedback_enabled,
        "options": exchange.options,
        **changes,
    }
    return ExchangeSettings(**values)
