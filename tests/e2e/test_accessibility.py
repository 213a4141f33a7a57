"""Accessibility checks measured in the browser: focus rings visible against their
surroundings (WCAG 2.2, 1.4.11: at least 3:1), and ARIA references that point at real ids."""

from __future__ import annotations

import re
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.e2e.conftest import login
from tests.e2e.test_responsive import main_pages, seed_console
from tests.moderation.factories import make_case

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _luminance(css: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# The focused element's outline colour and the background behind it (the nearest ancestor
# with an opaque background).
_RING = """(selector) => {
  const el = document.querySelector(selector);
  el.focus({ focusVisible: true });
  let bg = el.parentElement;
  const clear = "rgba(0, 0, 0, 0)";
  while (bg && getComputedStyle(bg).backgroundColor === clear) { bg = bg.parentElement; }
  return [getComputedStyle(el).outlineColor, getComputedStyle(el).outlineStyle,
          bg ? getComputedStyle(bg).backgroundColor : "rgb(255, 255, 255)"];
}"""

_BROKEN_REFERENCES = """() => {
  const broken = [];
  for (const attr of ["aria-describedby", "aria-labelledby", "aria-controls"]) {
    for (const el of document.querySelectorAll("[" + attr + "]")) {
      for (const id of el.getAttribute(attr).split(/\\s+/)) {
        if (id && !document.getElementById(id)) { broken.push(attr + "=" + id); }
      }
    }
  }
  return broken;
}"""


class AccessibilityTests:
    def test_focus_rings_are_visible_on_the_page_and_on_the_bar(
        self, page: Any, live_server: Any, lead: Any
    ) -> None:
        login(page, live_server, "lead1")
        page.keyboard.press("Tab")  # keyboard focus, so :focus-visible applies
        for selector in ("main a", ".topbar nav a"):
            colour, style, background = page.evaluate(_RING, selector)
            assert style == "solid", selector
            assert _contrast(colour, background) >= 3, (selector, colour, background)

    def test_aria_references_point_at_elements_on_the_main_pages(
        self, page: Any, live_server: Any, lead: Any
    ) -> None:
        case = make_case(kind="image", category="grooming")
        login(page, live_server, "lead1")
        for path in (
            "/",
            "/queue/",
            f"/cases/{case.pk}/",
            "/escalations/",
            "/hash-lists/",
            "/referrals/",
            "/compliance/",
            "/compliance/operations/",
        ):
            page.goto(f"{live_server.url}{path}")
            assert page.evaluate(_BROKEN_REFERENCES) == [], path


# axe-core (bundled by axe-playwright-python, injected through the DevTools protocol, so the
# Content Security Policy does not stand in its way) with its default rules: WCAG 2.x A and AA
# plus Deque's best practices. Every impact counts: a "minor" finding is still a finding.
def _axe_findings(page: Any) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): "
        + "; ".join(", ".join(map(str, n["target"])) for n in v["nodes"][:4])
        for v in results.response["violations"]
    ]


class AxeTests:
    def test_the_main_pages_have_no_axe_violations_on_a_desktop_or_a_phone(
        self, browser: Any, page: Any, live_server: Any, moderator: Any, lead: Any
    ) -> None:
        paths = main_pages(seed_console(moderator, lead))
        findings = []
        login(page, live_server, "lead1")
        for width in (1440, 390):
            page.set_viewport_size({"width": width, "height": 900})
            for path in paths:
                page.goto(f"{live_server.url}{path}")
                findings += [f"{width} {path} {f}" for f in _axe_findings(page)]
        page.goto(f"{live_server.url}/")  # at 390 px, with the folded menu open
        page.get_by_role("button", name="Menu").click()
        findings += [f"390 / (menu open) {f}" for f in _axe_findings(page)]
        anonymous = browser.new_context(viewport={"width": 1440, "height": 900})
        try:
            login_page = anonymous.new_page()
            for width in (1440, 390):
                login_page.set_viewport_size({"width": width, "height": 900})
                login_page.goto(f"{live_server.url}/login/")
                findings += [f"{width} /login/ {f}" for f in _axe_findings(login_page)]
        finally:
            anonymous.close()
        assert findings == [], "\n".join(findings)
