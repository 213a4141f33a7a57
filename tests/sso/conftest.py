"""Single sign-on against the local fake provider (tests/sso/fake_idp.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

from sso.provider import forget_provider
from tests.sso.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeIdp

ROLE_MAP = {"sg-moderators": "Moderator", "sg-leads": "Safety lead", "sg-admins": "Admin"}


@pytest.fixture(scope="session")
def fake_idp_server() -> Iterator[FakeIdp]:
    with FakeIdp() as idp:
        yield idp


@pytest.fixture
def idp(fake_idp_server: FakeIdp, settings: Any, db: None) -> Iterator[FakeIdp]:
    """Single sign-on configured against the fake provider, as the environment would."""
    settings.SAFEGUARD_OIDC_ENABLED = True
    settings.SAFEGUARD_OIDC_ISSUER = fake_idp_server.issuer
    settings.SAFEGUARD_OIDC_CLIENT_ID = CLIENT_ID
    settings.SAFEGUARD_OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.SAFEGUARD_OIDC_PROVIDER_NAME = "Example IdP"
    settings.SAFEGUARD_OIDC_ROLE_MAP = ROLE_MAP
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "sso.backends.OidcBackend",
    ]
    fake_idp_server.reset()
    forget_provider()
    yield fake_idp_server
    fake_idp_server.reset()
    forget_provider()


def start(client: Client, next_page: str = "") -> str:
    """Begin a sign-in; the provider's authorisation URL the browser is sent to."""
    response = client.get("/sso/login", {"next": next_page} if next_page else {})
    assert response.status_code == 302, response.status_code
    return response["Location"]


def sign_in(client: Client, idp: FakeIdp, next_page: str = "", **claims: Any) -> Any:
    """The whole round trip a browser makes: Safeguard → provider → Safeguard's callback."""
    idp.next_claims = claims
    authorize = start(client, next_page)
    back = requests.get(authorize, allow_redirects=False, timeout=5)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")
