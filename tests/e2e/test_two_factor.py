"""Two-factor enrolment in a real browser: no console nav until enrolled, and recovery codes
that can be downloaded and must be confirmed as saved before continuing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from core.audit import SystemActor
from core.enrolment import enrolment_link_issue
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class EnrolmentTests:
    def test_a_lead_enrols_downloads_the_codes_and_confirms_saving_them(
        self, page: Any, live_server: Any, lead: Any
    ) -> None:
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill("lead1")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/account/2fa/**")
        expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        # A password alone does not bind an authenticator to a lead: an admin's link does.
        expect(page.get_by_text("enrolment link")).not_to_have_count(0)
        assert not TOTPDevice.objects.filter(user=lead).exists()
        _, token = enrolment_link_issue(actor=SystemActor("test admin"), person=lead)
        page.goto(f"{live_server.url}/account/2fa/enrol/{token}")
        page.get_by_role("button", name="Set up my authenticator").click()
        page.wait_for_url("**/account/2fa/")
        expect(page.get_by_label("Code from your app")).to_be_visible()

        device = TOTPDevice.objects.get(user=lead, confirmed=False)
        code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
        page.get_by_label("Code from your app").fill(f"{code:06d}")
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("heading", name="Two-factor authentication is on")).to_be_visible()
        codes = page.locator("#recovery-codes li").all_inner_texts()
        assert len(codes) == 10

        with page.expect_download() as download:
            page.get_by_role("button", name="Download as a text file").click()
        saved = Path(download.value.path()).read_text()
        assert all(c in saved for c in codes)
        assert download.value.suggested_filename == "safeguard-recovery-codes-lead1.txt"

        # Not yet: the box is unticked, so the link is aria-disabled (force clicks it anyway).
        page.get_by_role("link", name="Continue").click(force=True)
        expect(page.get_by_role("status").filter(has_text="first")).to_be_visible()
        assert "/account/2fa/" in page.url
        page.get_by_label("I have saved these codes somewhere safe").check()
        page.get_by_role("link", name="Continue").click()
        page.wait_for_url(f"{live_server.url}/")
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
