"""The console at desktop (1440 px), small-laptop (1024 px) and phone (390 px) widths: no page
is wider than the window (wide tables scroll in their own box, charts scale to their card), and
on a phone the top bar's menu opens to show every nav item and Log out, inside the bar."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from moderation.services.escalations import case_mark_immediate_risk
from moderation.services.hashlists import hash_list_upsert
from moderation.services.queue import case_claim_next
from tests.e2e.conftest import login, screenshot
from tests.moderation.factories import make_case, make_rule
from tests.reports.factories import decide, drafted_packet

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WIDTHS = (1440, 1024, 390)

# The page's width against the window's, and the widest offenders for the failure message: a
# named culprit is quicker to fix than a number.
_OVERFLOW = """() => {
  const limit = window.innerWidth;
  const culprits = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > limit + 1) {
      const cls = typeof el.className === "string" && el.className.trim()
        ? "." + el.className.trim().split(/\\s+/).join(".") : "";
      culprits.push(el.tagName.toLowerCase() + cls + " right=" + Math.round(box.right));
    }
  }
  const scroll = document.documentElement.scrollWidth;
  return {scroll: scroll, inner: limit, culprits: culprits.slice(0, 6)};
}"""

# Whether an element is drawn inside the window and inside the blue bar.
_IN_BAR = """(el) => {
  const box = el.getBoundingClientRect();
  const bar = document.querySelector(".topbar").getBoundingClientRect();
  return box.width > 0 && box.left >= 0 && box.right <= window.innerWidth
    && box.top >= bar.top && box.bottom <= bar.bottom;
}"""


def seed_console(moderator: Any, lead: Any) -> dict[str, Any]:
    """Synthetic data that fills the main pages: a decided case and its drafted referral, an
    image case the lead holds (the decision form shows), and a case with a child at immediate
    risk (the 999 alerts and its escalation). Also used by the accessibility tests."""
    decide(moderator, "grooming")
    packet = drafted_packet(moderator, lead)
    make_case(kind="image", category="grooming")
    held = case_claim_next(user=lead)
    risk = make_case(kind="message", category="grooming")
    escalation = case_mark_immediate_risk(case=risk, actor=moderator, reason="meeting tonight")
    return {"case": held, "packet": packet, "escalation": escalation}


def main_pages(data: dict[str, Any]) -> list[str]:
    case, packet = data["case"].pk, data["packet"].pk
    return [
        "/",
        "/queue/",
        f"/cases/{case}/",
        "/escalations/",
        f"/escalations/{data['escalation'].pk}/",
        "/referrals/",
        f"/referrals/{packet}/",
        f"/referrals/new?case={case}",
        "/referrals/destinations/",
        "/hash-lists/",
        "/compliance/",
        "/compliance/operations/",
        "/compliance/principles/3/",
        "/principles/",
    ]


def _wider_than_the_window(
    page: Any, live_server: Any, paths: list[str], screenshots: tuple[str, ...] = ()
) -> list[str]:
    """Each page at each of WIDTHS: the ones wider than the window, with their culprits (and a
    phone-width screenshot of the `screenshots` paths)."""
    too_wide = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in paths:
            page.goto(f"{live_server.url}{path}")
            found = page.evaluate(_OVERFLOW)
            if found["scroll"] > found["inner"]:
                too_wide.append(f"{width} px {path}: {found}")
            if width == 390 and path in screenshots:
                screenshot(page, f"responsive-390-{path.strip('/').replace('/', '-')}")
    return too_wide


def _nav_links(page: Any) -> list[Any]:
    return page.locator(".topbar nav a").all()


class ResponsiveLayoutTests:
    def test_no_main_page_is_wider_than_the_window(
        self, page: Any, live_server: Any, moderator: Any, lead: Any
    ) -> None:
        data = seed_console(moderator, lead)
        case = data["case"]
        login(page, live_server, "lead1")
        shots = ("/compliance/operations/", f"/cases/{case.pk}/")
        too_wide = _wider_than_the_window(page, live_server, main_pages(data), shots)
        assert too_wide == [], "\n".join(too_wide)

    def test_no_admin_page_is_wider_than_the_window(
        self, page: Any, live_server: Any, admin_user: Any
    ) -> None:
        # Pages only an admin sees, with the rows that widen them: a list with its import form
        # (visually hidden labels in each row), a rule with a condition and actions.
        hash_list_upsert(name="Synthetic video list", algorithm="vpdq", actor=admin_user)
        make_rule(
            admin_user,
            "grooming goes to a lead",
            [{"field": "category", "op": "eq", "value": "grooming"}],
            [{"type": "open_escalation", "tier": "lead"}, {"type": "set_priority", "priority": 1}],
        )
        login(page, live_server, "admin1")
        pages = [
            "/hash-lists/",
            "/rules/",
            "/rules/new",
            "/compliance/qa/",
            "/compliance/transparency/",
            "/people/",
        ]
        too_wide = _wider_than_the_window(page, live_server, pages)
        assert too_wide == [], "\n".join(too_wide)

    def test_the_case_page_has_one_column_on_a_phone_and_two_on_a_desktop(
        self, page: Any, live_server: Any, lead: Any
    ) -> None:
        case = make_case(kind="image", category="grooming")
        login(page, live_server, "lead1")
        columns = "() => getComputedStyle(document.querySelector('.case-layout'))"
        columns += ".gridTemplateColumns.split(' ').length"
        for width, expected in ((1440, 2), (1024, 2), (390, 1)):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{live_server.url}/cases/{case.pk}/")
            assert page.evaluate(columns) == expected, width

    def test_on_a_phone_the_menu_opens_to_every_nav_item_and_log_out_inside_the_bar(
        self, page: Any, live_server: Any, admin_user: Any
    ) -> None:
        login(page, live_server, "admin1")  # an admin has the most nav items
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{live_server.url}/")
        menu = page.get_by_role("button", name="Menu")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(page.get_by_role("button", name="Log out")).to_be_hidden()
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        links = _nav_links(page)
        assert len(links) >= 10
        for item in [*links, page.get_by_role("button", name="Log out")]:
            expect(item).to_be_visible()
            assert page.evaluate(_IN_BAR, item.element_handle()), item.inner_text()
        # White on the bar's blue, not white on the grey page.
        colours = page.evaluate(
            """() => [getComputedStyle(document.querySelector('.session .who')).color,
                      getComputedStyle(document.querySelector('.topbar')).backgroundColor]"""
        )
        assert colours == ["rgb(255, 255, 255)", "rgb(29, 78, 137)"]
        assert page.evaluate(_OVERFLOW)["scroll"] <= 390
        screenshot(page, "responsive-390-menu-open")
        page.locator(".topbar").get_by_role("link", name="Hash lists").focus()
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(menu).to_be_focused()
        page.set_viewport_size({"width": 1440, "height": 900})
        expect(menu).to_be_hidden()
        for item in [*_nav_links(page), page.get_by_role("button", name="Log out")]:
            expect(item).to_be_visible()

    def test_without_javascript_the_bar_wraps_and_shows_everything_on_a_phone(
        self, browser: Any, live_server: Any, admin_user: Any
    ) -> None:
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, java_script_enabled=False
        )
        try:
            page = context.new_page()
            page.set_default_timeout(15000)
            login(page, live_server, "admin1")
            expect(page.get_by_role("button", name="Menu")).to_be_hidden()
            for item in [*_nav_links(page), page.get_by_role("button", name="Log out")]:
                expect(item).to_be_visible()
                assert page.evaluate(_IN_BAR, item.element_handle()), item.inner_text()
            assert page.evaluate(_OVERFLOW)["scroll"] <= 390
        finally:
            context.close()
