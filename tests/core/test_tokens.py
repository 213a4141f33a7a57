from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.models import ApiToken, AuditEvent
from core.services import api_token_revoke
from core.tokens import TokenError, api_token_create, platform_accounts


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


@pytest.mark.django_db
class CreateApiTokenExpiryCommandTests:
    def test_expires_sets_the_day_the_key_stops_working(self) -> None:
        call_command("create_api_token", "dated", "--expires", "2999-01-31", stdout=StringIO())
        expires_at = ApiToken.objects.get(name="dated").expires_at
        assert expires_at is not None
        assert timezone.localtime(expires_at).isoformat().startswith("2999-01-31T00:00:00")

    def test_it_refuses_a_malformed_or_past_date(self) -> None:
        with pytest.raises(CommandError, match="YYYY-MM-DD"):
            call_command("create_api_token", "x", "--expires", "31/01/2999", stdout=StringIO())
        with pytest.raises(CommandError, match="future"):
            call_command("create_api_token", "x", "--expires", "2000-01-01", stdout=StringIO())
        assert not ApiToken.objects.exists()


@pytest.mark.django_db
class ApiTokenCreateTests:
    def test_it_audits_the_issue_without_the_key(self, admin_user: Any) -> None:
        expires = timezone.now() + timedelta(days=30)
        token, key = api_token_create(name="acme", actor=admin_user, expires_at=expires)
        [event] = AuditEvent.objects.filter(verb="api_token.created")
        assert event.actor_id == admin_user.pk and event.object_id == str(token.pk)
        assert event.data == {
            "name": "acme",
            "scope": "platform",
            "user": "platform-acme",
            "expires_at": expires.isoformat(),
        }
        assert key not in json.dumps(list(AuditEvent.objects.values("data")))
        assert token.key_hash == ApiToken.hash_key(key) and key.startswith(token.prefix)

    def test_a_new_key_for_a_platform_keeps_its_account(self, admin_user: Any) -> None:
        first, _ = api_token_create(name="acme", actor=admin_user)
        second, _ = api_token_create(name="acme-2", actor=admin_user, platform_account=first.user)
        assert second.user == first.user and second.scope == ApiToken.Scope.PLATFORM
        assert list(platform_accounts()) == [first.user]

    def test_a_platform_account_is_never_a_person(self, admin_user: Any, moderator: Any) -> None:
        get_user_model().objects.create_user("platform-acme", password="unused-password-123")
        with pytest.raises(TokenError, match="taken by a person"):
            api_token_create(name="acme", actor=admin_user)
        with pytest.raises(TokenError, match="not a platform account"):
            api_token_create(name="x", actor=admin_user, platform_account=moderator)
        platform, _ = api_token_create(name="real", actor=admin_user)
        with pytest.raises(TokenError, match="platform account"):
            api_token_create(name="y", actor=admin_user, user=platform.user)
        assert ApiToken.objects.count() == 1

    def test_it_refuses_a_blank_or_taken_name_a_past_expiry_and_a_deactivated_person(
        self, admin_user: Any, moderator: Any
    ) -> None:
        api_token_create(name="taken", actor=admin_user)
        moderator.is_active = False
        moderator.save()
        refusals = [
            ({"name": "  "}, "name"),
            ({"name": "taken"}, "name"),
            ({"name": "late", "expires_at": timezone.now() - timedelta(seconds=1)}, "expires_at"),
            ({"name": "gone", "user": moderator}, "user"),
        ]
        for kwargs, field in refusals:
            with pytest.raises(TokenError) as refused:
                api_token_create(actor=admin_user, **kwargs)
            assert refused.value.field == field
        assert ApiToken.objects.count() == 1

    def test_revoking_twice_records_one_event(self, admin_user: Any) -> None:
        token, _ = api_token_create(name="acme", actor=admin_user)
        api_token_revoke(token=token, actor=admin_user)
        api_token_revoke(token=token, actor=admin_user)
        assert AuditEvent.objects.filter(verb="api_token.revoked").count() == 1


@pytest.mark.django_db
class TokenExpiryTests:
    def test_an_expired_token_gets_401_like_a_revoked_one(self, moderator: Any) -> None:
        token, key = api_token_create(
            name="soon",
            actor=SystemActor("test"),
            user=moderator,
            expires_at=timezone.now() + timedelta(days=1),
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get("/api/v1/principles").status_code == 200
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
        response = client.get("/api/v1/principles")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"
        token.refresh_from_db()
        assert token.is_expired and not token.is_active

    def test_use_is_recorded(self, moderator: Any) -> None:
        token, key = api_token_create(name="used", actor=SystemActor("test"), user=moderator)
        assert token.last_used_at is None
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        client.get("/api/v1/principles")
        token.refresh_from_db()
        assert token.last_used_at is not None
