"""Configuring exchanges (moderation.exchanges.configure): credentials sealed and write-only,
refusals an admin can act on, every change audited without a secret in it."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from core.models import AuditEvent
from moderation.exchanges.configure import (
    ExchangeSettings,
    exchange_create,
    exchange_fetch_request,
    exchange_update,
)
from moderation.exchanges.credentials import credentials_open
from moderation.exchanges.errors import ExchangeError
from moderation.models import Exchange

from .conftest import ACTOR, CREDENTIALS, KEY, pdq_list
from .fake_exchange import STOPNCII_KEYS


def _settings(**changes: Any) -> ExchangeSettings:
    values: dict[str, Any] = {"name": "StopNCII", "enabled": False, **changes}
    return ExchangeSettings(**values)


@pytest.mark.django_db
class CredentialTests:
    def test_credentials_are_sealed_and_the_audit_names_fields_not_values(self) -> None:
        exchange = exchange_create(
            kind="stopncii",
            settings=_settings(enabled=True, hash_list=pdq_list()),
            credentials=CREDENTIALS["stopncii"],
            actor=ACTOR,
        )
        for secret in CREDENTIALS["stopncii"].values():
            assert secret not in exchange.credentials
        assert credentials_open(exchange.credentials) == CREDENTIALS["stopncii"]
        event = AuditEvent.objects.get(verb="exchange.created")
        assert event.data["credentials_set"] == [
            "feedback_function_key",
            "fetch_function_key",
            "subscription_key",
        ]
        assert not any(secret in str(event.data) for secret in CREDENTIALS["stopncii"].values())

    def test_without_a_key_credentials_are_refused_not_stored_in_clear(self, settings: Any) -> None:
        settings.SAFEGUARD_EXCHANGE_KEY = []
        with pytest.raises(ExchangeError, match="SAFEGUARD_EXCHANGE_KEY is not set"):
            exchange_create(
                kind="stopncii", settings=_settings(), credentials=STOPNCII_KEYS, actor=ACTOR
            )
        assert not Exchange.objects.exists()

    def test_blank_fields_keep_what_is_stored_and_entered_ones_replace_it(self) -> None:
        exchange = exchange_create(
            kind="stopncii", settings=_settings(), credentials=STOPNCII_KEYS, actor=ACTOR
        )
        exchange_update(
            exchange=exchange,
            settings=_settings(),
            credentials={"subscription_key": "", "fetch_function_key": "new-fetch-key"},
            actor=ACTOR,
        )
        exchange.refresh_from_db()
        assert credentials_open(exchange.credentials) == {
            "subscription_key": STOPNCII_KEYS["subscription_key"],
            "fetch_function_key": "new-fetch-key",
        }
        event = AuditEvent.objects.get(verb="exchange.updated")
        assert event.data["credentials_replaced"] == ["fetch_function_key"]
        assert "new-fetch-key" not in str(event.data)

    def test_a_rotated_key_still_opens_credentials_sealed_with_the_old_one(
        self, settings: Any
    ) -> None:
        exchange = exchange_create(
            kind="stopncii", settings=_settings(), credentials=STOPNCII_KEYS, actor=ACTOR
        )
        settings.SAFEGUARD_EXCHANGE_KEY = [Fernet.generate_key().decode(), KEY]
        assert credentials_open(exchange.credentials) == STOPNCII_KEYS
        settings.SAFEGUARD_EXCHANGE_KEY = [Fernet.generate_key().decode()]
        with pytest.raises(ExchangeError, match="can't be decrypted"):
            credentials_open(exchange.credentials)


@pytest.mark.django_db
class RefusalTests:
    @pytest.mark.parametrize(
        ("kind", "changes", "credentials", "message"),
        [
            ("stopncii", {"enabled": True}, STOPNCII_KEYS, "Choose the hash list"),
            ("stopncii", {"enabled": True, "list": True}, {}, "StopNCII needs"),
            ("tat", {"feedback_enabled": True}, {}, "takes no feedback"),
            ("stopncii", {"feedback_enabled": True}, STOPNCII_KEYS, "SubmitFeedback function key"),
            ("fb_threatexchange", {}, {}, "privacy group"),
            ("ncmec", {"options": {"environment": "Nowhere"}}, {}, "Unknown NCMEC environment"),
            ("ncmec", {"options": {"base_url": "http://example.org"}}, {}, "must use https"),
            ("stopncii", {"interval_minutes": 1}, {}, "Fetch every 5"),
        ],
    )
    def test_it_refuses_what_would_not_work(
        self, kind: str, changes: dict[str, Any], credentials: dict[str, str], message: str
    ) -> None:
        if changes.pop("list", False):
            changes["hash_list"] = pdq_list()
        with pytest.raises(ExchangeError, match=message):
            exchange_create(
                kind=kind, settings=_settings(**changes), credentials=credentials, actor=ACTOR
            )

    def test_a_threatexchange_token_must_look_like_one(self) -> None:
        with pytest.raises(ExchangeError, match="not a ThreatExchange app access token"):
            exchange_create(
                kind="fb_threatexchange",
                settings=_settings(
                    enabled=True, hash_list=pdq_list(), options={"privacy_group": 7}
                ),
                credentials={"api_token": "short"},
                actor=ACTOR,
            )

    def test_names_are_unique(self) -> None:
        exchange_create(kind="stopncii", settings=_settings(), actor=ACTOR)
        with pytest.raises(ExchangeError, match="exists already"):
            exchange_create(kind="tat", settings=_settings(), actor=ACTOR)


@pytest.mark.django_db
class UpdateTests:
    def test_a_new_source_starts_over_and_feedback_starts_from_now(self) -> None:
        hash_list = pdq_list()
        exchange = exchange_create(
            kind="stopncii",
            settings=_settings(hash_list=hash_list),
            credentials=CREDENTIALS["stopncii"],
            actor=ACTOR,
        )
        Exchange.objects.filter(pk=exchange.pk).update(checkpoint={"update_time": 5})
        exchange.refresh_from_db()
        exchange = exchange_update(
            exchange=exchange,
            settings=_settings(
                hash_list=hash_list,
                feedback_enabled=True,
                options={"base_url": "https://test.example.org/v1"},
            ),
            actor=ACTOR,
        )
        assert exchange.checkpoint is None and exchange.feedback_cursor is not None
        event = AuditEvent.objects.get(verb="exchange.updated")
        assert event.data["checkpoint_reset"] is True
        assert event.data["changes"]["options"] == {"base_url": "https://test.example.org/v1"}

    def test_fetch_now_is_refused_for_a_disabled_exchange(
        self, django_capture_on_commit_callbacks: Any
    ) -> None:
        exchange = exchange_create(kind="stopncii", settings=_settings(), actor=ACTOR)
        with pytest.raises(ExchangeError, match="disabled"):
            exchange_fetch_request(exchange=exchange, actor=ACTOR)
        Exchange.objects.filter(pk=exchange.pk).update(enabled=True)
        exchange.refresh_from_db()
        with django_capture_on_commit_callbacks() as callbacks:
            exchange_fetch_request(exchange=exchange, actor=ACTOR)
        assert len(callbacks) == 1
        assert AuditEvent.objects.filter(verb="exchange.fetch_requested").count() == 1
