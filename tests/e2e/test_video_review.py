"""A moderator reviews a video case at minimal exposure, in a real browser: metadata, matched
segments and a hidden contact sheet first; one frame revealed with a reason; the player only
after the video itself is revealed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from moderation.media.synthetic import write_synthetic_video
from moderation.media.video import hash_video, vpdq_format
from moderation.models import MediaFrame, Reveal
from moderation.services.queue import case_claim_next
from tests.e2e.conftest import login, screenshot
from tests.moderation.factories import make_video_item

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# The matched segment of the listed six seconds, as the page writes it (en dashes).
SEGMENT = "0:00\u20130:05 (listed 0:00\u20130:05)"
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
# What sticks out past the right edge (for the failure message): elements not inside a scroller.
OVERFLOWING = """() => Array.from(document.querySelectorAll("body *"))
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.parentElement.closest(".table-scroll"))
  .map(e => e.tagName.toLowerCase() + (e.className ? "." + e.className : "")).slice(0, 12)"""


class VideoReviewTests:
    def test_a_moderator_reveals_one_frame_then_the_video_muted_and_paused(
        self, page: Any, live_server: Any, moderator: Any, tmp_path: Path
    ) -> None:
        # A listed video (six seconds) inside a twelve-second upload: one matched segment.
        listed = tmp_path / "known.vpdq.txt"
        listed.write_text(
            vpdq_format(hash_video(write_synthetic_video(tmp_path / "l.mp4", 5)).frames)
        )
        call_command(
            "import_hashes",
            str(listed),
            "--list",
            "videos",
            "--algorithm",
            "vpdq",
            "--category",
            "A",
        )
        item = make_video_item(write_synthetic_video(tmp_path / "v.mp4", 5, seconds=12))
        media = item.media
        assert media.hash_status == "done" and media.matches.exists(), media.hash_error
        case = case_claim_next(user=moderator)
        assert case is not None and case.pk == item.case_id
        sheet = list(MediaFrame.objects.filter(media=media).exclude(thumbnail="").order_by("frame"))

        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        login(page, live_server, "mod1")
        page.goto(f"{live_server.url}/cases/{case.pk}/")

        # Metadata, the matched segment and a hidden contact sheet; nothing of the video loaded.
        expect(page.get_by_role("heading", name="Contact sheet")).to_be_visible()
        expect(page.get_by_text(SEGMENT).first).to_be_visible()
        expect(page.locator(".sheet-frame")).to_have_count(len(sheet))
        assert page.locator(".sheet-thumb img").count() == 0
        assert page.locator("video").count() == 0
        served = f"{live_server.url}/media/"
        assert not [url for url in requests if url.startswith(served)]

        # The timeline leads to a frame; k moves to the next one; Enter asks for the reason.
        page.get_by_role("button", name=f"videos: {SEGMENT}").first.click()
        expect(page.locator(f"#frame-{sheet[0].pk}")).to_be_focused()
        page.keyboard.press("k")
        target = sheet[1]
        expect(page.locator(f"#frame-{target.pk}")).to_be_focused()
        page.keyboard.press("ArrowLeft")
        expect(page.locator(f"#frame-{sheet[0].pk}")).to_be_focused()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Enter")
        reason = page.get_by_label("Reason to reveal the frame at 0:01")
        expect(reason).to_be_focused()
        reason.fill("vPDQ match: confirm the listed scene")
        page.keyboard.press("Enter")

        image = page.locator(f"#frame-{target.pk} img")
        image.wait_for(state="visible")
        assert "blur(24px)" in image.get_attribute("style")
        assert "grayscale(1)" in image.get_attribute("style")
        # Wait for the JPEG itself (wait_for_function would poll a string with eval: CSP says no).
        image.evaluate("img => img.decode()")
        assert image.evaluate("img => img.naturalWidth") > 0
        expect(page.locator("#reveals-today")).to_have_text("1")
        assert page.locator(".sheet-thumb img").count() == 1  # that frame only
        assert [url for url in requests if url.startswith(served)] == [
            f"{served}{media.pk}/frames/{target.pk}"
        ]
        assert Reveal.objects.get(user=moderator).frame_id == target.pk

        page.set_viewport_size({"width": 1440, "height": 900})
        page.locator(".contact-sheet").scroll_into_view_if_needed()
        screenshot(page, "case-video-frame-1440")
        assert page.evaluate(NO_OVERFLOW), page.evaluate(OVERFLOWING)
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "case-video-frame-390")
        assert page.evaluate(NO_OVERFLOW), page.evaluate(OVERFLOWING)
        page.set_viewport_size({"width": 1440, "height": 900})

        # The player exists only after its own reveal: muted, paused, nothing preloaded.
        page.get_by_label("Reason to reveal the video", exact=True).fill(
            "frames not enough: need the motion"
        )
        page.get_by_role("button", name="Reveal the video").click()
        video = page.locator(".reveal-media video")
        video.wait_for(state="attached")
        props = video.evaluate(
            "v => ({muted: v.muted, autoplay: v.autoplay, preload: v.preload,"
            " controls: v.controls, filter: v.style.filter})"
        )
        assert props == {
            "muted": True,
            "autoplay": False,
            "preload": "none",
            "controls": False,  # its own sit under the blur; plain ones sit outside it
            "filter": "blur(24px) grayscale(1)",
        }
        play = page.get_by_role("button", name="Play")
        expect(play).to_be_focused()  # the reason form is gone: the keyboard stays on the player
        sound = page.get_by_role("button", name="Sound")
        expect(sound).to_have_attribute("aria-pressed", "false")
        sound.click()
        expect(sound).to_have_attribute("aria-pressed", "true")
        assert video.evaluate("v => v.muted") is False
        sound.click()
        assert video.evaluate("v => v.muted") is True
        expect(page.locator("#reveals-today")).to_have_text("2")
        assert not [
            url
            for url in requests
            if url.startswith(f"{served}{media.pk}") and "/frames/" not in url
        ]
        assert Reveal.objects.filter(user=moderator, frame__isnull=True).count() == 1
        screenshot(page, "case-video-player")

        # Esc hides everything revealed: the frame and the player.
        page.keyboard.press("Escape")
        assert page.locator(".sheet-thumb img").count() == 0
        assert page.locator("video").count() == 0
        # r (reveal) on a video case starts at its contact sheet: the first hidden frame's reason.
        page.keyboard.press("r")
        expect(page.get_by_label("Reason to reveal the frame at 0:00")).to_be_focused()
