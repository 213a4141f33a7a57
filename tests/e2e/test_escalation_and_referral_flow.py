"""The 999 path and a referral packet, end to end in headless Chromium."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from moderation.models import Escalation
from reports.models import Destination, ReferralPacket
from tests.e2e.conftest import login, screenshot
from tests.moderation.factories import make_case
from tests.worker import start_worker

__all__ = ["start_worker"]

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class ImmediateRiskFlowTests:
    def test_moderator_marks_immediate_risk_lead_acknowledges_records_the_call(
        self, browser: Any, live_server: Any, moderator: Any, lead: Any
    ) -> None:
        case = make_case(kind="message", category="grooming")
        mod = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        login(mod, live_server, "mod1")
        mod.goto(f"{live_server.url}/queue/")
        mod.get_by_role("button", name="Next case").click()
        mod.wait_for_url(f"{live_server.url}/cases/{case.pk}/")
        mod.get_by_label("What makes the risk immediate").fill("arranging to meet tonight")
        mod.get_by_label("I believe a child is at high or immediate risk").check()
        mod.once("dialog", lambda dialog: dialog.accept())  # the confirmation
        mod.get_by_role("button", name="Child at immediate risk").click()
        mod.wait_for_load_state()
        expect(mod.get_by_text("On-call safety leads are being paged")).to_be_visible()
        escalation = Escalation.objects.get(case=case, tier="immediate_risk")

        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        login(page, live_server, "lead1")
        page.goto(f"{live_server.url}/escalations/")
        screenshot(page, "escalations-board")
        page.get_by_role("link", name=f"#{escalation.pk}").click()
        page.get_by_role("button", name="Acknowledge").click()
        expect(page.get_by_text("Call 999 now").first).to_be_visible()
        page.get_by_label("Police force").select_option("Greater Manchester Police")
        page.get_by_label("Police incident / CAD reference").fill("GMP-CAD-1234")
        page.get_by_role("button", name="Record the call").click()
        expect(page.get_by_text("The 999 call is recorded")).to_be_visible()
        expect(page.get_by_text("GMP-CAD-1234")).to_be_visible()
        packet = ReferralPacket.objects.get(escalation=escalation)
        expect(page.get_by_role("link", name=packet.reference)).to_be_visible()
        screenshot(page, "escalation-called")
        escalation.refresh_from_db()
        assert escalation.acknowledged_by == lead and escalation.called_at is not None
        assert escalation.opened_at <= escalation.acknowledged_at <= escalation.called_at


@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.postgres
class ReferralPacketFlowTests:
    def test_a_lead_drafts_a_second_approves_it_builds_downloads_and_verifies(
        self,
        browser: Any,
        live_server: Any,
        lead: Any,
        lead2: Any,
        start_worker: Any,
        tmp_path: Path,
    ) -> None:
        worker = start_worker()
        case = make_case(kind="image", category="new_csam")
        first = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        login(first, live_server, "lead1")
        first.goto(f"{live_server.url}/cases/{case.pk}/")
        first.get_by_role("link", name="Draft a referral").click()
        # The local police force, found by typing in the picker's filter.
        first.get_by_label("Find a destination").fill("kent")
        expect(first.get_by_label("Destination", exact=True)).to_have_value(
            str(Destination.objects.get(code="kent").pk)
        )
        first.get_by_label("Not held by the provider").check()
        first.get_by_label("Priority").select_option("urgent")
        first.get_by_label("Incident summary").fill("Synthetic test referral.")
        first.get_by_role("button", name="Draft and send for approval").click()
        expect(first.get_by_text("a second safety lead must approve it")).to_be_visible()
        expect(first.get_by_text("Waiting for a second safety lead")).to_be_visible()
        packet = ReferralPacket.objects.get()

        second = browser.new_context(
            viewport={"width": 1366, "height": 900}, accept_downloads=True
        ).new_page()
        login(second, live_server, "lead2")
        second.goto(f"{live_server.url}/referrals/{packet.pk}/")
        second.get_by_label("I confirm the declaration").check()
        second.get_by_role("button", name="Approve and build").click()
        # The worker builds it; the page shows progress, then reloads when it is ready.
        link = second.get_by_role("link", name=f"Download {packet.reference}.zip")
        link.wait_for(timeout=60000)
        screenshot(second, "packet-ready")
        with second.expect_download() as download_info:
            link.click()
        target = tmp_path / f"{packet.reference}.zip"
        download_info.value.save_as(target)
        out = StringIO()
        call_command("verify_packet", str(target), stdout=out)
        assert "OK" in out.getvalue(), worker.output()
        packet.refresh_from_db()
        assert packet.status == "exported" and packet.approved_by == lead2


class DestinationFilterTests:
    def test_text_typed_before_the_filter_script_ran_still_picks_the_force(
        self, browser: Any, live_server: Any, lead: Any
    ) -> None:
        # The script is deferred: on a slow connection a lead can type before it runs, and the
        # input events fired then had no listener (a CI run caught it racing Playwright).
        case = make_case(kind="image", category="new_csam")
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        login(page, live_server, "lead1")
        page.route("**/destination_filter*.js", lambda route: route.abort())
        page.goto(f"{live_server.url}/cases/{case.pk}/")
        page.get_by_role("link", name="Draft a referral").click()
        page.wait_for_load_state()
        destination = page.get_by_label("Destination", exact=True)
        page.get_by_label("Find a destination").fill("kent")
        expect(destination).to_have_value("")  # nothing listened
        src = page.locator("script[src*='destination_filter']").get_attribute("src")
        assert src
        page.unroute("**/destination_filter*.js")
        page.add_script_tag(url=src)  # the script arrives late
        expect(destination).to_have_value(str(Destination.objects.get(code="kent").pk))
