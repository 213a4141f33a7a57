"""Fixtures of the HMA tests: token clients for each persona (HMA clients send a token), and
synthetic hashes and images (never real ones)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.authentication import token_cache_clear
from core.services import api_token_create
from hma.selectors import searchable_lists_clear


@pytest.fixture(autouse=True)
def _fresh_lists(settings: Any) -> Any:
    """Lookups read the lists afresh in these tests (the reuse has its own test), and the
    lookup fast path's reused token checks start empty (hma.fastpath)."""
    settings.HMA_LIST_CACHE_SECONDS = 0
    searchable_lists_clear()
    token_cache_clear()
    yield
    searchable_lists_clear()
    token_cache_clear()


def token_client(user: Any, name: str) -> APIClient:
    """A client with a console token acting as ``user`` (create_api_token NAME --user)."""
    _, key = api_token_create(name=name, user=user, actor=SystemActor("test"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def admin_client(admin_user: Any) -> APIClient:
    return token_client(admin_user, "hma-admin")


@pytest.fixture
def lead_client(lead: Any) -> APIClient:
    return token_client(lead, "hma-lead")


@pytest.fixture
def moderator_client(moderator: Any) -> APIClient:
    return token_client(moderator, "hma-moderator")


@pytest.fixture
def outsider_client(outsider: Any) -> APIClient:
    return token_client(outsider, "hma-outsider")
