"""A moderator works the queue end to end in a real browser."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from moderation.models import Case, Decision, Reveal
from tests.e2e.conftest import login, screenshot
from tests.moderation.factories import make_case, make_known_material_cases

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class ModeratorReviewFlowTests:
    def test_a_moderator_claims_reveals_with_a_reason_and_decides(
        self, page: Any, live_server: Any, moderator: Any
    ) -> None:
        case = make_case(kind="image", category="new_csam")
        make_case(kind="text", category="search_abuse")
        login(page, live_server, "mod1")
        page.goto(f"{live_server.url}/queue/")
        expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
        screenshot(page, "queue")

        page.keyboard.press("n")  # keyboard shortcut: claim the next case
        page.wait_for_url(f"{live_server.url}/cases/{case.pk}/")
        expect(page.get_by_text("Media is hidden")).to_be_visible()
        assert page.locator(".reveal-media img").count() == 0

        page.get_by_label("Reason to reveal").fill("classifier flag without a hash match")
        page.get_by_role("button", name="Reveal (blurred)").click()
        image = page.locator(".reveal-media img")
        image.wait_for(state="visible")
        assert "blur(24px)" in image.get_attribute("style")
        assert "grayscale(1)" in image.get_attribute("style")
        expect(page.get_by_label("Blur", exact=True)).to_be_focused()  # not lost with the form
        page.wait_for_function("document.querySelector('.reveal-media img').naturalWidth > 0")
        screenshot(page, "case-revealed")
        assert Reveal.objects.filter(user=moderator, case=case).count() == 1

        page.get_by_role("button", name="Hide again").click()
        assert page.locator(".reveal-media img").count() == 0

        page.get_by_label("Remove and report").check()
        page.get_by_label("Rationale").fill("synthetic test decision")
        page.get_by_role("button", name="Decide", exact=True).click()
        page.wait_for_url(f"{live_server.url}/queue/")
        expect(page.get_by_text(f"Decision recorded on {case.reference}")).to_be_visible()
        decision = Decision.objects.get(case=case)
        assert decision.outcome == "remove_and_report"
        assert Case.objects.get(pk=case.pk).status == "decided"

    def test_the_help_overlay_lists_the_shortcuts(
        self, page: Any, live_server: Any, moderator: Any
    ) -> None:
        make_case(kind="text", category="grooming")
        login(page, live_server, "mod1")
        page.goto(f"{live_server.url}/queue/")
        page.keyboard.press("n")
        page.wait_for_url("**/cases/*/")
        page.keyboard.press("?")
        expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()

    def test_queue_help_is_a_modal_and_n_while_holding_says_so(
        self, page: Any, live_server: Any, moderator: Any
    ) -> None:
        make_case(kind="text", category="grooming")
        make_case(kind="text", category="grooming")
        login(page, live_server, "mod1")
        page.goto(f"{live_server.url}/queue/")
        page.keyboard.press("?")
        dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("button", name="Close")).to_be_focused()
        page.keyboard.press("n")  # ignored while the help is open
        expect(dialog).to_be_visible()
        assert page.url.endswith("/queue/")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

        page.keyboard.press("n")
        page.wait_for_url("**/cases/*/")
        held = page.url
        page.keyboard.press("n")  # still holding this case: back to it, with a message
        expect(page.get_by_text("You still hold case")).to_be_visible()
        assert page.url == held

    def test_bulk_action_on_known_material_selects_nothing_and_confirms_the_count(
        self, page: Any, live_server: Any, moderator: Any
    ) -> None:
        first, second = make_known_material_cases(81, 82)
        login(page, live_server, "mod1")
        page.goto(f"{live_server.url}/queue/known-material")
        boxes = page.locator("input[name=case]")
        expect(boxes).to_have_count(2)
        for i in range(2):
            expect(boxes.nth(i)).not_to_be_checked()
        expect(page.get_by_text("V · sha256 · distance 0 · provider category A")).to_have_count(2)
        page.get_by_label("Select all cases").check()
        expect(page.locator("#selected-count")).to_have_text("2 selected")
        page.get_by_label("I have checked the match evidence").check()
        dialogs: list[str] = []

        def dismiss(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.once("dialog", dismiss)
        page.get_by_role("button", name="Action selected cases").click()
        expect(page.locator("#selected-count")).to_have_text("2 selected")
        assert dialogs and dialogs[0].startswith("Action 2 case(s) as “Remove and report”")
        assert not Decision.objects.exists()  # dismissed: nothing happened

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Action selected cases").click()
        expect(page.get_by_text("2 known-material case(s) actioned")).to_be_visible()
        assert set(Decision.objects.values_list("case_id", flat=True)) == {first.pk, second.pk}
        assert not Reveal.objects.exists()


class OutsiderTests:
    def test_an_outsider_gets_no_access(self, page: Any, live_server: Any, outsider: Any) -> None:
        case = make_case(kind="image")
        login(page, live_server, "outsider")
        expect(page.get_by_text("no Safeguard role")).to_be_visible()
        assert page.goto(f"{live_server.url}/queue/").status == 403
        assert page.goto(f"{live_server.url}/cases/{case.pk}/").status == 403
        media = case.items.get().media
        assert page.goto(f"{live_server.url}/media/{media.pk}").status == 403
        screenshot(page, "outsider")
