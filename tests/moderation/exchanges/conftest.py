"""Exchange fixtures: the fake exchange server, a credentials key, exchanges pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from core.audit import SystemActor
from moderation.exchanges.configure import ExchangeSettings, exchange_create
from moderation.models import Exchange, HashList
from moderation.services.hashlists import hash_list_upsert

from .fake_exchange import (
    NCMEC_CREDENTIALS,
    STOPNCII_FEEDBACK_KEY,
    STOPNCII_KEYS,
    TAT_CREDENTIALS,
    TX_GROUP,
    TX_TOKEN,
    FakeExchange,
)

ACTOR = SystemActor("test")
KEY = Fernet.generate_key().decode()
CREDENTIALS = {
    "ncmec": dict(NCMEC_CREDENTIALS),
    "stopncii": {**STOPNCII_KEYS, "feedback_function_key": STOPNCII_FEEDBACK_KEY},
    "fb_threatexchange": {"api_token": TX_TOKEN},
    "tat": dict(TAT_CREDENTIALS),
}
# Where each kind lives on the fake server, and its non-secret options.
PATHS = {"ncmec": "ncmec", "stopncii": "stopncii", "fb_threatexchange": "tx", "tat": "tat"}
OPTIONS: dict[str, dict[str, Any]] = {
    "ncmec": {"environment": "test_Industry"},
    "stopncii": {},
    "fb_threatexchange": {"privacy_group": TX_GROUP},
    "tat": {},
}


@pytest.fixture(autouse=True)
def _exchange_settings(settings: Any) -> None:
    settings.SAFEGUARD_EXCHANGE_KEY = [KEY]
    settings.SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS = True  # the fake exchange is local
    settings.SAFEGUARD_EXCHANGE_RETRY_SECONDS = 0
    settings.SAFEGUARD_EXCHANGE_RETRIES = 2
    settings.SAFEGUARD_EXCHANGE_MAX_WAIT_SECONDS = 5


@pytest.fixture
def fake() -> Iterator[FakeExchange]:
    with FakeExchange() as server:
        yield server


def pdq_list(name: str = "Exchange PDQ") -> HashList:
    hash_list, _ = hash_list_upsert(name=name, algorithm="pdq", actor=ACTOR, verified=True)
    return hash_list


def connect(
    fake: FakeExchange,
    kind: str,
    *,
    hash_list: HashList | None = None,
    name: str | None = None,
    credentials: dict[str, str] | None = None,
    enabled: bool = True,
    **settings: Any,
) -> Exchange:
    """An exchange of `kind` pointed at the fake server."""
    return exchange_create(
        kind=kind,
        settings=ExchangeSettings(
            name=name or f"Fake {kind}",
            enabled=enabled,
            hash_list=hash_list or pdq_list(),
            options={**OPTIONS[kind], "base_url": fake.url(PATHS[kind])},
            **settings,
        ),
        credentials=CREDENTIALS[kind] if credentials is None else credentials,
        actor=ACTOR,
    )
