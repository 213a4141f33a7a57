from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.models import ApiToken
from core.services import api_token_revoke


@pytest.mark.django_db
class CreateApiTokenCommandTests:
    def test_it_prints_a_key_once_and_stores_only_its_hash(self) -> None:
        out = StringIO()
        call_command("create_api_token", "acme", stdout=out)
        key = out.getvalue().strip()
        token = ApiToken.objects.get(name="acme")
        assert key.startswith("sg_")
        assert token.key_hash == ApiToken.hash_key(key)
        assert key not in token.key_hash and token.scope == ApiToken.Scope.PLATFORM

    def test_a_user_token_acts_as_that_user(self, moderator: Any) -> None:
        out = StringIO()
        call_command("create_api_token", "mod-cli", "--user", moderator.username, stdout=out)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
        assert client.get("/api/v1/principles").status_code == 200
        assert ApiToken.objects.get(name="mod-cli").scope == ApiToken.Scope.CONSOLE

    def test_it_refuses_an_unknown_user_and_a_duplicate_name(self) -> None:
        with pytest.raises(CommandError, match="No user named"):
            call_command("create_api_token", "x", "--user", "ghost", stdout=StringIO())
        call_command("create_api_token", "dup", stdout=StringIO())
        with pytest.raises(CommandError, match="already exists"):
            call_command("create_api_token", "dup", stdout=StringIO())


@pytest.mark.django_db
class TokenAuthenticationTests:
    def test_an_invalid_or_revoked_token_gets_401(self, platform_key: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token sg_not-a-real-key")
        response = client.get("/api/v1/principles")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"
        token = ApiToken.objects.get(name="test-platform")
        api_token_revoke(token=token, actor=SystemActor("test"))
        client.credentials(HTTP_AUTHORIZATION=f"Token {platform_key}")
        assert client.get("/api/v1/principles").status_code == 401
