"""Single sign-on in a real browser, against the local fake provider (tests/sso/fake_idp.py):
the login page's button, the provider's round trip, the TOTP fallback, a refusal, logout."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.sso.conftest import fake_idp_server, idp  # noqa: F401 — fixtures used below
from tests.sso.fake_idp import FakeIdp

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def site(idp: FakeIdp, settings: Any, live_server: Any) -> str:  # noqa: F811
    """The live server as SITE_URL (the redirect URI), with the provider's origin allowed as a
    form target, as config/settings.py does when SAFEGUARD_OIDC_ISSUER is set."""
    settings.SITE_URL = live_server.url
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"].append(idp.issuer.rsplit("/", 1)[0])
    settings.CONTENT_SECURITY_POLICY = policy
    return live_server.url


class SingleSignOnTests:
    def test_a_lead_with_mfa_signs_in_and_out_through_the_provider(
        self,
        page: Any,
        site: str,
        idp: FakeIdp,  # noqa: F811
    ) -> None:
        idp.next_claims = {"groups": ["sg-leads"], "amr": ["pwd", "hwk"]}
        page.goto(f"{site}/login/")
        page.get_by_role("link", name="Sign in with Example IdP").click()
        page.wait_for_url(f"{site}/")
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        expect(page.locator(".who")).to_have_text("alice · Safety lead")

        page.get_by_role("button", name="Log out").click()
        # Through the provider's end-session endpoint and back to the login page.
        page.wait_for_url(f"{site}/login/")
        page.goto(f"{site}/escalations/")
        assert page.url.startswith(f"{site}/login/")

    def test_an_admin_without_mfa_at_the_provider_is_asked_for_safeguards_totp(
        self,
        page: Any,
        site: str,
        idp: FakeIdp,  # noqa: F811
    ) -> None:
        idp.next_claims = {"groups": ["sg-admins"], "amr": ["pwd"]}
        page.goto(f"{site}/login/")
        page.get_by_role("link", name="Sign in with Example IdP").click()
        page.wait_for_url("**/account/2fa/**")
        expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()

    def test_an_unmapped_group_gets_a_clear_refusal(
        self,
        page: Any,
        site: str,
        idp: FakeIdp,  # noqa: F811
    ) -> None:
        idp.next_claims = {"groups": ["payroll"]}
        page.goto(f"{site}/login/")
        page.get_by_role("link", name="Sign in with Example IdP").click()
        expect(page.get_by_role("heading", name="You were not signed in")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("not in any group")
