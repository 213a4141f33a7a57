"""core.clientip and the probe's proxy finding: behind a reverse proxy, five wrong passwords
from one client must not lock the account out for everyone."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, RequestFactory

from core.clientip import client_ip
from tests.conftest import PASSWORD

PROXY = "10.0.0.5"


def _ip(settings: Any, remote: str, forwarded: str | None = None) -> str:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


def test_forwarded_for_is_ignored_without_trusted_proxies(settings: Any) -> None:
    settings.SAFEGUARD_TRUSTED_PROXIES = []
    assert _ip(settings, PROXY, "203.0.113.9") == PROXY


def test_the_first_untrusted_hop_from_the_right_is_the_client(settings: Any) -> None:
    settings.SAFEGUARD_TRUSTED_PROXIES = ["10.0.0.0/8", "172.16.0.1"]
    assert _ip(settings, PROXY, "203.0.113.9") == "203.0.113.9"
    # A client-chosen first entry is not believed: the proxy appended the real address.
    assert _ip(settings, PROXY, "198.51.100.1, 203.0.113.9") == "203.0.113.9"
    assert _ip(settings, PROXY, "203.0.113.9, 172.16.0.1") == "203.0.113.9"
    assert _ip(settings, PROXY, "2001:db8::1") == "2001:db8::1"
    assert _ip(settings, PROXY, "not-an-ip") == PROXY
    # A request straight from an untrusted address: its header is the client's own claim.
    assert _ip(settings, "203.0.113.50", "10.0.0.9") == "203.0.113.50"


@pytest.mark.django_db
def test_failed_logins_through_the_proxy_lock_out_only_that_client(
    moderator: Any, settings: Any
) -> None:
    settings.SAFEGUARD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    attacker = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.66")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/login/", {"username": "mod1", "password": "wrong"})
    refused = attacker.post("/login/", {"username": "mod1", "password": PASSWORD})
    assert refused.status_code in (403, 429)
    owner = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7")
    response = owner.post("/login/", {"username": "mod1", "password": PASSWORD})
    assert response.status_code == 302 and "_auth_user_id" in owner.session
