"""Expired sessions lose no work, the expiry is announced ahead, and the escalations board and a
lead's home update themselves — in headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from core.views import SESSION_EXPIRED_MESSAGE
from moderation.models import Decision
from moderation.services.escalations import case_mark_immediate_risk
from tests.conftest import PASSWORD
from tests.e2e.conftest import current_totp, login, screenshot
from tests.moderation.factories import make_case

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

RATIONALE = "Synthetic test: the messages ask the account holder to move to another app."
LIVE_TIMEOUT = 25_000  # ms: slack for a slow machine (the tests jump the page clock ahead)
POLL_MS = 10_000  # live.js's default interval


def _new_page(browser: Any) -> Any:
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.set_default_timeout(15000)
    # The page's timers and clock are Playwright's: time flows as usual, and a test jumps
    # ahead (`clock.fast_forward`) instead of sleeping through a poll or a warning's delay.
    page.clock.install()
    return page


def _draft_keys(page: Any) -> list[str]:
    return page.evaluate(
        "Object.keys(sessionStorage).filter((k) => k.startsWith('safeguard.draft.'))"
    )


class ExpiredSessionTests:
    def test_an_expired_decision_keeps_its_draft_and_lands_back_on_the_case_page(
        self, browser: Any, live_server: Any, moderator: Any
    ) -> None:
        case = make_case(kind="message", category="grooming")
        page = _new_page(browser)
        login(page, live_server, "mod1")
        page.goto(f"{live_server.url}/queue/")
        page.get_by_role("button", name="Next case").click()
        case_url = f"{live_server.url}/cases/{case.pk}/"
        page.wait_for_url(case_url)
        page.get_by_label("Escalate to a safety lead").check()
        page.get_by_label("Rationale").fill(RATIONALE)

        # The session ends on the server while the moderator is still writing.
        Session.objects.all().delete()
        page.get_by_role("button", name="Decide", exact=True).click()

        page.wait_for_url("**/login/**")
        assert "expired=1" in page.url and f"next=%2Fcases%2F{case.pk}%2F" in page.url
        expect(page.get_by_text(SESSION_EXPIRED_MESSAGE)).to_be_visible()
        assert not Decision.objects.filter(case=case).exists()
        screenshot(page, "session-expired-login")

        page.get_by_label("Username").fill("mod1")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/account/2fa/**")
        # The code of the first login may still be the current one; django-otp refuses a code
        # twice, so forget which one was used (a second login within 30 s is this test's speed).
        TOTPDevice.objects.filter(user=moderator).update(last_t=-1)
        page.get_by_label("Code").fill(current_totp("mod1"))
        page.get_by_role("button", name="Verify").click()

        page.wait_for_url(case_url)
        expect(page.get_by_label("Rationale")).to_have_value(RATIONALE)
        expect(page.get_by_label("Escalate to a safety lead")).to_be_checked()
        expect(page.get_by_text("Draft restored from this browser tab")).to_be_visible()
        screenshot(page, "session-expired-draft-restored")

        page.get_by_role("button", name="Decide", exact=True).click()
        page.wait_for_url(f"{live_server.url}/queue/")
        expect(page.get_by_text(f"Decision recorded on {case.reference}")).to_be_visible()
        decision = Decision.objects.get(case=case)
        assert decision.rationale == RATIONALE and decision.outcome == "escalate"
        assert _draft_keys(page) == []  # a draft that was sent and recorded is gone

    def test_the_expiry_warning_comes_a_minute_ahead_and_stay_signed_in_extends(
        self, browser: Any, live_server: Any, moderator: Any, settings: Any
    ) -> None:
        settings.SESSION_COOKIE_AGE = 75  # the warning is due 15 s after a page load
        page = _new_page(browser)
        login(page, live_server, "mod1")
        warning = page.get_by_role("alertdialog", name="Your session is about to end")
        expect(warning).to_be_hidden()
        page.clock.fast_forward(16_000)
        expect(warning).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(warning).to_contain_text("You will be signed out in")
        stay = warning.get_by_role("button", name="Stay signed in")
        expect(stay).to_be_focused()
        screenshot(page, "session-expiry-warning")

        with page.expect_response(lambda r: r.url.endswith("/account/keep-alive")) as answer:
            stay.click()
        assert answer.value.status == 200
        expect(warning).to_be_hidden()


class LiveUpdateTests:
    def test_a_new_immediate_risk_escalation_appears_on_the_open_board(
        self, browser: Any, live_server: Any, moderator: Any, lead: Any
    ) -> None:
        page = _new_page(browser)
        login(page, live_server, "lead1")
        page.goto(f"{live_server.url}/escalations/")
        expect(page.get_by_text("No open escalations.")).to_be_visible()
        page.evaluate("window.__sameDocument = true")

        case = make_case(kind="message", category="grooming")
        escalation = case_mark_immediate_risk(case=case, actor=moderator, reason="meeting")
        page.clock.fast_forward(POLL_MS + 500)

        expect(page.get_by_role("link", name=f"#{escalation.pk}")).to_be_visible(
            timeout=LIVE_TIMEOUT
        )
        expect(page.locator("#board-live-alert")).to_contain_text(
            f"New 999 escalation #{escalation.pk}"
        )
        expect(page.locator("#board-live-status")).to_contain_text("last updated")
        assert page.evaluate("window.__sameDocument") is True  # no reload
        screenshot(page, "escalations-live")

    def test_a_leads_home_shows_a_new_child_at_immediate_risk(
        self, browser: Any, live_server: Any, moderator: Any, lead: Any
    ) -> None:
        page = _new_page(browser)
        login(page, live_server, "lead1")
        expect(page.get_by_role("heading", name="Escalations")).to_be_visible()
        page.evaluate("window.__sameDocument = true")

        case = make_case(kind="message", category="grooming")
        case_mark_immediate_risk(case=case, actor=moderator, reason="meeting")
        page.clock.fast_forward(POLL_MS + 500)

        panel = page.get_by_role("heading", name="Child at immediate risk — call 999 now")
        expect(panel).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(page.get_by_role("link", name=case.reference)).to_be_visible()
        expect(page.locator("#lead-live-alert")).to_contain_text(case.reference)
        assert page.evaluate("window.__sameDocument") is True
