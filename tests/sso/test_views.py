"""Signing in and out through the fake provider: each role, MFA, demotion, refusals."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY

from core.models import AuditEvent
from core.roles import ADMIN, MODERATOR, SAFETY_LEAD
from sso.models import IdpMfaDevice, OidcIdentity
from tests.conftest import client_for
from tests.sso.conftest import sign_in, start
from tests.sso.fake_idp import FakeIdp, new_key

User = get_user_model()
MFA = {"amr": ["pwd", "mfa"]}


def _roles(user: Any) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def _refused(response: Any, status: int = 403) -> str:
    assert response.status_code == status
    assert "You were not signed in" in response.content.decode()
    return response.content.decode()


@pytest.mark.django_db
class SignInTests:
    @pytest.mark.parametrize(
        ("group", "role"),
        [("sg-moderators", MODERATOR), ("sg-leads", SAFETY_LEAD), ("sg-admins", ADMIN)],
    )
    def test_each_role_signs_in_and_is_provisioned_on_first_login(
        self, idp: FakeIdp, group: str, role: str
    ) -> None:
        client = Client()
        response = sign_in(client, idp, groups=[group], **MFA)
        assert response.status_code == 302
        assert response["Location"] == reverse(settings.LOGIN_REDIRECT_URL)
        user = User.objects.get(username="alice")
        assert _roles(user) == {role}
        assert user.is_staff == (role == ADMIN)
        assert not user.has_usable_password()
        assert OidcIdentity.objects.get(user=user).subject == "sub-alice"
        home = client.get("/")
        assert home.status_code == 200
        assert home.context["user"].username == "alice"
        verbs = list(
            AuditEvent.objects.filter(object_id=str(user.pk)).values_list("verb", flat=True)
        )
        assert {"person.provisioned", "person.role_changed", "sso.signed_in"} <= set(verbs)

    def test_the_second_sign_in_finds_the_same_person(self, idp: FakeIdp) -> None:
        sign_in(Client(), idp, **MFA)
        sign_in(Client(), idp, email="alice@new.example.org", **MFA)
        user = User.objects.get()
        assert user.email == "alice@new.example.org"
        assert OidcIdentity.objects.count() == 1

    def test_it_returns_to_the_page_asked_for(self, idp: FakeIdp) -> None:
        response = sign_in(Client(), idp, next_page="/queue/", **MFA)
        assert response["Location"] == "/queue/"

    def test_it_never_returns_to_another_site(self, idp: FakeIdp) -> None:
        response = sign_in(Client(), idp, next_page="https://evil.example/", **MFA)
        assert "evil" not in response["Location"]

    def test_highest_mapped_group_wins_and_unknown_groups_are_ignored(self, idp: FakeIdp) -> None:
        sign_in(Client(), idp, groups=["sg-moderators", "sg-leads", "payroll"], **MFA)
        assert _roles(User.objects.get()) == {SAFETY_LEAD}

    def test_the_login_page_offers_the_provider(self, idp: FakeIdp) -> None:
        page = Client().get("/login/").content.decode()
        assert "Sign in with Example IdP" in page
        assert 'id="id_password"' in page


@pytest.mark.django_db
class MultiFactorTests:
    def test_a_lead_whose_provider_asserts_mfa_skips_safeguards_totp(self, idp: FakeIdp) -> None:
        client = Client()
        sign_in(client, idp, groups=["sg-leads"], amr=["pwd", "otp"])
        assert client.session[DEVICE_ID_SESSION_KEY].startswith("sso.idpmfadevice/")
        assert client.get("/escalations/").status_code == 200

    def test_a_lead_without_amr_is_sent_to_totp(self, idp: FakeIdp) -> None:
        client = Client()
        response = sign_in(client, idp, next_page="/escalations/", groups=["sg-leads"])
        assert response["Location"] == "/escalations/"
        assert DEVICE_ID_SESSION_KEY not in client.session
        page = client.get("/escalations/")
        assert page.status_code == 302
        assert page["Location"].startswith("/account/2fa/")
        assert not IdpMfaDevice.objects.exists()

    def test_an_admin_with_a_single_factor_amr_is_sent_to_totp(self, idp: FakeIdp) -> None:
        client = Client()
        sign_in(client, idp, groups=["sg-admins"], amr=["pwd"])
        assert client.get("/people/")["Location"].startswith("/account/2fa/")

    def test_a_configured_acr_counts_as_mfa(self, idp: FakeIdp, settings: Any) -> None:
        settings.SAFEGUARD_OIDC_MFA_ACR = ["urn:example:loa:mfa"]
        client = Client()
        sign_in(client, idp, groups=["sg-admins"], acr="urn:example:loa:mfa")
        assert client.get("/people/").status_code == 200

    def test_mfa_is_judged_again_at_each_sign_in(self, idp: FakeIdp) -> None:
        sign_in(Client(), idp, groups=["sg-leads"], **MFA)
        client = Client()
        sign_in(client, idp, groups=["sg-leads"])
        assert client.get("/escalations/")["Location"].startswith("/account/2fa/")

    def test_the_provider_device_verifies_no_typed_code(self, idp: FakeIdp) -> None:
        sign_in(Client(), idp, groups=["sg-leads"], **MFA)
        assert IdpMfaDevice.objects.get().verify_token("123456") is False


@pytest.mark.django_db
class RoleFollowsGroupsTests:
    def test_a_group_change_demotes_on_next_login_and_is_audited(self, idp: FakeIdp) -> None:
        sign_in(Client(), idp, groups=["sg-admins"], **MFA)
        user = User.objects.get()
        assert _roles(user) == {ADMIN} and user.is_staff
        client = Client()
        sign_in(client, idp, groups=["sg-moderators"], **MFA)
        user.refresh_from_db()
        assert _roles(user) == {MODERATOR}
        assert not user.is_staff
        assert client.get("/people/").status_code == 403
        event = AuditEvent.objects.filter(verb="person.role_changed").latest("id")
        assert event.data["from"] == [ADMIN] and event.data["to"] == MODERATOR
        assert event.actor_label == "identity provider"

    def test_losing_every_mapped_group_removes_the_role_and_refuses(self, idp: FakeIdp) -> None:
        sign_in(Client(), idp, groups=["sg-leads"], **MFA)
        client = Client()
        _refused(sign_in(client, idp, groups=["payroll"], **MFA))
        user = User.objects.get()
        assert _roles(user) == set()
        assert "_auth_user_id" not in client.session
        event = AuditEvent.objects.filter(verb="person.role_changed").latest("id")
        assert event.data["to"] is None

    def test_a_deactivated_person_is_refused(self, idp: FakeIdp) -> None:
        sign_in(Client(), idp, **MFA)
        User.objects.update(is_active=False)
        client = Client()
        assert "deactivated" in _refused(sign_in(client, idp, **MFA))
        assert "_auth_user_id" not in client.session


@pytest.mark.django_db
class RefusalTests:
    """Each bad answer: a clear page, nobody signed in, nothing created."""

    def _assert_nothing_created(self, client: Client) -> None:
        assert not User.objects.exists()
        assert not OidcIdentity.objects.exists()
        assert not AuditEvent.objects.filter(verb__startswith="person.").exists()
        assert "_auth_user_id" not in client.session

    def _refused_with(self, idp: FakeIdp, forge: Any, status: int = 403, **claims: Any) -> str:
        idp.forge = forge
        client = Client()
        page = _refused(sign_in(client, idp, **claims), status)
        self._assert_nothing_created(client)
        return page

    def test_an_unsigned_alg_none_token_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, lambda claims: jwt.encode(claims, None, algorithm="none"))

    def test_an_hmac_token_keyed_with_the_public_key_is_refused(self, idp: FakeIdp) -> None:
        def forge(claims: dict[str, Any]) -> str:
            header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT","kid":"test-key-1"}')
            body = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode())
            return f"{header.decode()}.{body.decode()}.c2lnbmF0dXJl"

        self._refused_with(idp, forge)

    def test_a_bad_signature_is_refused(self, idp: FakeIdp) -> None:
        other = new_key()
        self._refused_with(idp, lambda claims: idp.sign(claims, key=other))

    def test_a_token_from_an_unknown_key_is_refused(self, idp: FakeIdp) -> None:
        other = new_key()
        self._refused_with(idp, lambda claims: idp.sign(claims, key=other, kid="elsewhere"))

    def test_a_tampered_token_is_refused(self, idp: FakeIdp) -> None:
        def forge(claims: dict[str, Any]) -> str:
            header, _, signature = idp.sign(claims).split(".")
            body = jwt.utils.base64url_encode(
                jwt.api_jws.json.dumps({**claims, "groups": ["sg-admins"]}).encode()
            )
            return f"{header}.{body.decode()}.{signature}"

        self._refused_with(idp, forge)

    def test_a_wrong_issuer_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, lambda c: idp.sign({**c, "iss": "https://evil.example/"}))

    def test_a_wrong_audience_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, lambda c: idp.sign({**c, "aud": "another-client"}))

    def test_several_audiences_without_this_client_as_azp_are_refused(self, idp: FakeIdp) -> None:
        self._refused_with(
            idp, lambda c: idp.sign({**c, "aud": [c["aud"], "other"], "azp": "other"})
        )

    def test_an_expired_token_is_refused_saying_so(self, idp: FakeIdp) -> None:
        past = int(time.time()) - 3600
        page = self._refused_with(idp, lambda c: idp.sign({**c, "iat": past, "exp": past + 60}))
        assert "expired" in page

    def test_a_token_for_another_sign_in_nonce_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, lambda c: idp.sign({**c, "nonce": "replayed"}))

    def test_a_token_without_a_nonce_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, lambda c: idp.sign({k: v for k, v in c.items() if k != "nonce"}))

    def test_garbage_instead_of_a_token_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, lambda c: "not-a-jwt")

    def test_a_missing_username_claim_is_refused(self, idp: FakeIdp) -> None:
        page = self._refused_with(idp, None, preferred_username=None)
        assert "did not say who you are" in page

    def test_an_unusable_username_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, None, preferred_username="alice smith<script>")

    def test_an_unmapped_group_is_refused_and_nothing_is_created(self, idp: FakeIdp) -> None:
        page = self._refused_with(idp, None, groups=["payroll", "everyone"])
        assert "not in any group" in page

    def test_no_groups_claim_at_all_is_refused(self, idp: FakeIdp) -> None:
        self._refused_with(idp, None, groups=None)

    def test_an_existing_local_account_is_not_taken_over(self, idp: FakeIdp) -> None:
        local = User.objects.create_user(username="alice", password="x" * 16)
        client = Client()
        page = _refused(sign_in(client, idp))
        assert "already exists" in page
        assert not OidcIdentity.objects.exists()
        assert not local.groups.exists()

    def test_a_callback_with_another_state_is_refused(self, idp: FakeIdp) -> None:
        client = Client()
        start(client)
        _refused(client.get("/sso/callback", {"code": "x", "state": "forged"}), 400)
        assert idp.token_requests == 0
        self._assert_nothing_created(client)

    def test_a_callback_without_a_sign_in_in_flight_is_refused(self, idp: FakeIdp) -> None:
        _refused(Client().get("/sso/callback", {"code": "x", "state": "x"}), 400)

    def test_a_replayed_callback_is_refused(self, idp: FakeIdp) -> None:
        client = Client()
        authorize = start(client)
        state = parse_qs(urlsplit(authorize).query)["state"][0]
        client.get("/sso/callback", {"error": "access_denied", "state": state})
        _refused(client.get("/sso/callback", {"code": "x", "state": state}), 400)

    def test_the_providers_own_error_is_shown_as_a_refusal(self, idp: FakeIdp) -> None:
        client = Client()
        state = parse_qs(urlsplit(start(client)).query)["state"][0]
        _refused(client.get("/sso/callback", {"error": "access_denied", "state": state}))
        self._assert_nothing_created(client)

    def test_a_code_the_provider_rejects_is_refused(self, idp: FakeIdp) -> None:
        client = Client()
        state = parse_qs(urlsplit(start(client)).query)["state"][0]
        _refused(client.get("/sso/callback", {"code": "made-up", "state": state}))
        self._assert_nothing_created(client)

    def test_an_unreachable_provider_gives_a_clear_page(self, idp: FakeIdp, settings: Any) -> None:
        settings.SAFEGUARD_OIDC_ISSUER = "http://127.0.0.1:9/realm"
        page = _refused(Client().get("/sso/login"), 502)
        assert "could not reach" in page

    def test_a_discovery_document_for_another_issuer_is_refused(
        self, idp: FakeIdp, settings: Any
    ) -> None:
        # The document at this URL names the fake provider's real issuer, not this one.
        settings.SAFEGUARD_OIDC_ISSUER = idp.issuer + "/../realm"
        _refused(Client().get("/sso/login"), 502)


@pytest.mark.django_db
class DisabledTests:
    def test_without_configuration_every_sso_route_is_404(self) -> None:
        client = Client()
        assert client.get("/sso/login").status_code == 404
        assert client.get("/sso/callback", {"code": "x", "state": "x"}).status_code == 404
        assert "Sign in with" not in client.get("/login/").content.decode()

    def test_local_password_login_can_be_turned_off(self, idp: FakeIdp, settings: Any) -> None:
        settings.SAFEGUARD_LOCAL_PASSWORD_LOGIN = False
        settings.AUTHENTICATION_BACKENDS = [
            b
            for b in settings.AUTHENTICATION_BACKENDS
            if b != "django.contrib.auth.backends.ModelBackend"
        ]
        User.objects.create_user(username="bob", password="a-long-password-1")
        client = Client()
        page = client.get("/login/").content.decode()
        assert 'id="id_password"' not in page
        assert "Password sign-in is turned off" in page
        response = client.post("/login/", {"username": "bob", "password": "a-long-password-1"})
        assert response.status_code == 200
        assert "_auth_user_id" not in client.session
        # …and single sign-on still works, with permissions from the person's groups.
        sign_in(client, idp, groups=["sg-leads"], **MFA)
        assert client.get("/escalations/").status_code == 200


@pytest.mark.django_db
class SignOutTests:
    def test_logout_ends_the_session_and_the_providers(self, idp: FakeIdp) -> None:
        client = Client()
        sign_in(client, idp, **MFA)
        assert 'action="/sso/logout"' in client.get("/").content.decode()
        response = client.post("/sso/logout")
        assert response.status_code == 302
        target = urlsplit(response["Location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{idp.issuer}/logout"
        query = parse_qs(target.query)
        assert query["post_logout_redirect_uri"] == ["http://127.0.0.1:8000/login/"]
        assert query["client_id"] == ["safeguard-test"]
        assert query["id_token_hint"][0].count(".") == 2
        assert "_auth_user_id" not in client.session
        assert client.get("/").status_code == 302

    def test_without_an_end_session_endpoint_it_returns_to_the_login_page(
        self, idp: FakeIdp, settings: Any
    ) -> None:
        client = Client()
        sign_in(client, idp, **MFA)
        settings.SAFEGUARD_OIDC_DISCOVERY = False
        settings.SAFEGUARD_OIDC_AUTHORIZATION_ENDPOINT = f"{idp.issuer}/authorize"
        settings.SAFEGUARD_OIDC_TOKEN_ENDPOINT = f"{idp.issuer}/token"
        settings.SAFEGUARD_OIDC_JWKS_URI = f"{idp.issuer}/jwks"
        from sso.provider import forget_provider

        forget_provider()
        response = client.post("/sso/logout")
        assert response["Location"] == "/login/"
        assert "_auth_user_id" not in client.session

    def test_a_password_session_logging_out_here_just_logs_out(
        self, idp: FakeIdp, moderator: Any
    ) -> None:
        client = client_for(moderator)
        assert 'action="/logout/"' in client.get("/").content.decode()
        response = client.post("/sso/logout")
        assert response["Location"] == "/login/"
        assert "_auth_user_id" not in client.session

    def test_logout_needs_post(self, idp: FakeIdp) -> None:
        assert Client().get("/sso/logout").status_code == 405
