"""Exchange pages: an admin connects an exchange, watches it fill a list with provenance and
sees deletions honoured; leads watch; nobody else sees anything; credentials never shown."""

from __future__ import annotations

import random
from typing import Any

import pytest
from cryptography.fernet import Fernet

from core.audit import SystemActor
from moderation.exchanges.configure import ExchangeSettings, exchange_create
from moderation.models import Exchange, KnownHash
from moderation.services.hashlists import hash_list_upsert
from tests.conftest import client_for
from tests.moderation.exchanges.fake_exchange import (
    STOPNCII_FEEDBACK_KEY,
    STOPNCII_KEYS,
    FakeExchange,
    random_hex,
)

RNG = random.Random(77)


@pytest.fixture(autouse=True)
def _key(settings: Any) -> None:
    settings.SAFEGUARD_EXCHANGE_KEY = [Fernet.generate_key().decode()]
    settings.SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS = True  # the fake exchange is local


@pytest.mark.django_db
class ExchangeConsoleTests:
    def test_an_admin_connects_an_exchange_watches_it_fill_and_sees_deletions_honoured(
        self, admin_user: Any, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        hash_list, _ = hash_list_upsert(
            name="StopNCII PDQ", algorithm="pdq", actor=SystemActor("test")
        )
        client = client_for(admin_user)
        with FakeExchange() as fake:
            values = [random_hex(RNG, 64) for _ in range(7)]
            for i, value in enumerate(values):
                fake["stopncii"].add(100 + i, f"pdq:{value}", hashValue=value)
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(
                    "/hash-lists/exchanges/new",
                    {
                        "name": "StopNCII",
                        "kind": "stopncii",
                        "enabled": "on",
                        "hash_list": hash_list.pk,
                        "interval_minutes": 60,
                        "base_url": fake.url("stopncii"),
                        **STOPNCII_KEYS,
                        "feedback_function_key": STOPNCII_FEEDBACK_KEY,
                    },
                )
            exchange = Exchange.objects.get()
            assert response.status_code == 302
            assert response["Location"] == f"/hash-lists/exchanges/{exchange.pk}/"
            # Enabled: the first fetch ran after commit (tasks run in-process here).
            assert KnownHash.objects.filter(hash_list=hash_list).count() == 7
            page = client.get(f"/hash-lists/exchanges/{exchange.pk}/").content.decode()
            assert "Up to date" in page and f"pdq:{values[0]}"[:30] in page
            assert "listed" in page
            progress = client.get(f"/hash-lists/exchanges/{exchange.pk}/progress").json()
            assert progress["state"] == "idle"
            assert progress["fetch"]["added"] == 7 and progress["fetch"]["status"] == "done"

            fake["stopncii"].add(500, f"pdq:{values[0]}", hashValue=values[0], hashStatus="Deleted")
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(f"/hash-lists/exchanges/{exchange.pk}/fetch")
            assert response.status_code == 302
            assert KnownHash.objects.get(value=values[0]).withdrawn_at is not None
            page = client.get(f"/hash-lists/exchanges/{exchange.pk}/").content.decode()
            assert "withdrawn by source" in page
            lead_page = client_for(lead).get(f"/hash-lists/exchanges/{exchange.pk}/")
            assert lead_page.status_code == 200
            assert 'action="/hash-lists/exchanges/' not in lead_page.content.decode()  # read-only
            for secret in (*STOPNCII_KEYS.values(), STOPNCII_FEEDBACK_KEY):
                for url in ("/hash-lists/exchanges/", f"/hash-lists/exchanges/{exchange.pk}/"):
                    assert secret not in client.get(url).content.decode()

    def test_leads_moderators_and_outsiders_cannot_change_exchanges(
        self, lead: Any, moderator: Any, outsider: Any
    ) -> None:
        exchange = exchange_create(
            kind="stopncii",
            settings=ExchangeSettings(name="Feed"),
            actor=SystemActor("test"),
        )
        for user in (lead, moderator, outsider):
            client = client_for(user)
            assert client.post("/hash-lists/exchanges/new", {"name": "x"}).status_code == 403
            for action in ("edit", "fetch"):
                url = f"/hash-lists/exchanges/{exchange.pk}/{action}"
                assert client.post(url).status_code == 403
        for user in (moderator, outsider):
            assert client_for(user).get("/hash-lists/exchanges/").status_code == 403
        assert Exchange.objects.get().name == "Feed"

    def test_a_refusal_is_shown_and_nothing_is_saved(self, admin_user: Any, settings: Any) -> None:
        settings.SAFEGUARD_EXCHANGE_KEY = []
        response = client_for(admin_user).post(
            "/hash-lists/exchanges/new",
            {
                "name": "NCMEC",
                "kind": "ncmec",
                "interval_minutes": 60,
                "username": "u",
                "password": "secret-password-1",
            },
            follow=True,
        )
        page = response.content.decode()
        assert "SAFEGUARD_EXCHANGE_KEY is not set" in page
        assert "secret-password-1" not in page
        assert not Exchange.objects.exists()
