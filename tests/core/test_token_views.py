from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.models import ApiToken, AuditEvent
from core.tokens import api_token_create
from tests.conftest import client_for


def _key_in(html: str) -> str:
    match = re.search(r'value="(sg_[^"]+)"', html)
    assert match, "no key on the page"
    return match.group(1)


def _api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _messages(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


@pytest.mark.django_db
class TokensPageTests:
    def test_admins_see_every_token_with_scope_expiry_and_last_use(
        self, admin_user: Any, moderator: Any
    ) -> None:
        api_token_create(
            name="acme", actor=SystemActor("t"), expires_at=timezone.now() + timedelta(days=3)
        )
        api_token_create(name="mod-script", actor=SystemActor("t"), user=moderator)
        html = client_for(admin_user).get("/tokens/").content.decode()
        for text in ("acme", "platform-acme", "mod-script", "Acting as a person", "never"):
            assert text in html

    def test_others_get_403(self, lead: Any, moderator: Any) -> None:
        for user in (lead, moderator):
            assert client_for(user).get("/tokens/").status_code == 403
            assert client_for(user).post("/tokens/new", {"name": "x"}).status_code == 403


@pytest.mark.django_db
class IssueTests:
    def test_a_platform_key_is_shown_once_and_works_for_the_api(self, admin_user: Any) -> None:
        client = client_for(admin_user)
        response = client.post("/tokens/new", {"name": "acme", "scope": "platform"})
        assert response.status_code == 200
        assert response["Cache-Control"].startswith("max-age=0")
        key = _key_in(response.content.decode())
        token = ApiToken.objects.get(name="acme")
        assert token.key_hash == ApiToken.hash_key(key) and token.scope == "platform"
        assert key not in client.get("/tokens/").content.decode()
        # Authenticated (not 401): a platform may ask for its own items; this one is absent.
        assert _api(key).get("/api/v1/items/999999").status_code == 404
        [event] = AuditEvent.objects.filter(verb="api_token.created")
        assert event.actor_id == admin_user.pk

    def test_a_token_acting_as_a_person_has_their_permissions(
        self, admin_user: Any, moderator: Any
    ) -> None:
        html = (
            client_for(admin_user)
            .post("/tokens/new", {"name": "mod", "scope": "console", "user": moderator.pk})
            .content.decode()
        )
        key = _key_in(html)
        assert ApiToken.objects.get(name="mod").user == moderator
        assert _api(key).get("/api/v1/principles").status_code == 200
        assert _api(key).get("/api/v1/escalation-rules").status_code == 403

    def test_a_platform_keeps_its_account_when_its_key_is_rotated(self, admin_user: Any) -> None:
        old, _ = api_token_create(name="acme", actor=SystemActor("t"))
        client_for(admin_user).post(
            "/tokens/new",
            {"name": "acme-2026", "scope": "platform", "platform_account": old.user.pk},
        )
        assert ApiToken.objects.get(name="acme-2026").user == old.user

    def test_an_expiry_is_kept_and_a_past_one_refused(self, admin_user: Any) -> None:
        client = client_for(admin_user)
        day = (timezone.localdate() + timedelta(days=10)).isoformat()
        client.post("/tokens/new", {"name": "dated", "scope": "platform", "expires_on": day})
        expires_at = ApiToken.objects.get(name="dated").expires_at
        assert timezone.localtime(expires_at).date().isoformat() == day
        past = (timezone.localdate() - timedelta(days=1)).isoformat()
        response = client.post(
            "/tokens/new", {"name": "old", "scope": "platform", "expires_on": past}
        )
        assert response.status_code == 200 and "in the future" in response.content.decode()
        assert not ApiToken.objects.filter(name="old").exists()

    def test_a_person_token_needs_the_person_and_names_are_unique(self, admin_user: Any) -> None:
        client = client_for(admin_user)
        html = client.post("/tokens/new", {"name": "who", "scope": "console"}).content.decode()
        assert "Choose the person" in html
        api_token_create(name="taken", actor=SystemActor("t"))
        html = client.post("/tokens/new", {"name": "taken", "scope": "platform"}).content.decode()
        assert "already exists" in html
        assert ApiToken.objects.count() == 1


@pytest.mark.django_db
class RevokeTests:
    def test_a_revoked_key_gets_401_at_once(self, admin_user: Any) -> None:
        token, key = api_token_create(name="acme", actor=SystemActor("t"))
        response = client_for(admin_user).post(f"/tokens/{token.pk}/revoke", {"confirm": "on"})
        assert response.status_code == 302 and response["Location"] == "/tokens/"
        assert _api(key).get("/api/v1/items/1").status_code == 401
        [event] = AuditEvent.objects.filter(verb="api_token.revoked")
        assert event.actor_id == admin_user.pk

    def test_it_needs_the_confirmation(self, admin_user: Any) -> None:
        token, _ = api_token_create(name="acme", actor=SystemActor("t"))
        response = client_for(admin_user).post(f"/tokens/{token.pk}/revoke", {}, follow=True)
        assert "Tick the box" in _messages(response)
        token.refresh_from_db()
        assert token.revoked_at is None

    def test_an_expired_token_is_marked_and_refused(self, admin_user: Any) -> None:
        token, key = api_token_create(
            name="acme", actor=SystemActor("t"), expires_at=timezone.now() + timedelta(days=1)
        )
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
        assert _api(key).get("/api/v1/items/1").status_code == 401
        assert "expired" in client_for(admin_user).get("/tokens/").content.decode()
