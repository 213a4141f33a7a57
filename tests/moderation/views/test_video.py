"""The case page for a video: metadata, matched segments and a contact sheet of hidden frames
first; each frame revealed on its own with a reason (counted, audited, served briefly and only to
whoever revealed it); the player only after the video itself is revealed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from core.audit import SystemActor
from core.evidence_crypto import evidence_read_bytes
from core.models import AuditEvent
from moderation.media.synthetic import write_synthetic_video
from moderation.media.video import hash_video, vpdq_format
from moderation.models import Case, Media, MediaFrame, Reveal
from moderation.services.exposure import exposure_for
from moderation.services.retention import media_delete
from moderation.views.video import clock, timeline_position
from tests.conftest import client_for
from tests.moderation.factories import make_case, make_video_item

# The matched segment of the listed six seconds, as the page writes it (en dashes).
SEGMENT = "0:00\u20130:05 (listed 0:00\u20130:05)"


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("case-videos")
    return {
        "six": write_synthetic_video(root / "six.mp4", 3, seconds=6),
        "twelve": write_synthetic_video(root / "twelve.mp4", 3, seconds=12),
        "other": write_synthetic_video(root / "other.mp4", 41, seconds=4),
    }


def _video(path: Path) -> tuple[Case, Media]:
    item = make_video_item(path)
    assert item.media.hash_status == "done", item.media.hash_error
    assert item.case is not None
    return item.case, item.media


def _sheet(media: Media) -> list[MediaFrame]:
    return list(media.frames.exclude(thumbnail="").order_by("frame"))


def _reveal(client: Client, case: Case, media: Media, frame: Any = None, reason: str = "") -> Any:
    data = {"reason": reason or "hash match: check the frame"}
    if frame is not None:
        data["frame"] = str(getattr(frame, "pk", frame))
    return client.post(f"/cases/{case.pk}/media/{media.pk}/reveal", data)


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


class TimelineTests:
    def test_times_read_as_a_player_shows_them(self) -> None:
        assert [clock(0), clock(7.9), clock(63), clock(754.2)] == ["0:00", "0:07", "1:03", "12:34"]

    def test_a_segment_sits_on_the_bar_visible_and_inside_it(self) -> None:
        assert timeline_position(3, 8, 10) == ("30.00%", "50.00%")
        assert timeline_position(11, 12, 12) == ("91.67%", "8.33%")  # the last frame
        assert timeline_position(9, 14, 10) == ("90.00%", "10.00%")  # clipped at the end
        assert timeline_position(600, 600.1, 600) == ("99.25%", "0.75%")  # still visible
        assert timeline_position(0, 1, 0) == ("0.00%", "100.00%")  # no duration known


@pytest.mark.django_db
class VideoCasePageTests:
    def test_metadata_first_and_a_contact_sheet_of_placeholders_without_any_frame_url(
        self, videos: dict[str, Path], moderator: Any
    ) -> None:
        case, media = _video(videos["six"])
        response = client_for(moderator).get(f"/cases/{case.pk}/")
        html = response.content.decode()
        assert response.status_code == 200
        for shown in ("<dd>0:06</dd>", "320\u00d7240", ">h264<", "15 fps", "90 in the file"):
            assert shown in html, shown
        assert "6 hashed (vPDQ)" in html and "6 on the contact sheet" in html
        sheet = _sheet(media)
        assert html.count('class="sheet-frame"') == len(sheet) == 6
        assert all(f'aria-label="Frame at {clock(f.timestamp)}, hidden"' in html for f in sheet)
        # Nothing to load before a reveal: no frame URL, no image but the logo, no player.
        assert "/frames/" not in html and f'"/media/{media.pk}"' not in html
        assert re.findall(r"<img [^>]*>", html) == [re.search(r"<img [^>]*favicon[^>]*>", html)[0]]
        assert "<video" not in html
        assert "Reveal the video" in html

    def test_matched_segments_are_listed_and_drawn_on_the_timeline(
        self, videos: dict[str, Path], moderator: Any, tmp_path: Path
    ) -> None:
        listed = tmp_path / "known.vpdq.txt"
        listed.write_text(vpdq_format(hash_video(videos["six"]).frames))
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
        case, media = _video(videos["twelve"])  # the listed six seconds, then six others
        match = media.matches.get()
        assert match.segments and match.listed_percent == 100.0
        html = client_for(moderator).get(f"/cases/{case.pk}/").content.decode()
        assert SEGMENT in html
        assert f"listed 100% · query {match.query_percent:.0f}%" in html
        # The six matched seconds of twelve: half the bar, from the start; the list says it too.
        assert 'style="left: 0.00%; width: 50.00%"' in html
        first = _sheet(media)[0]
        assert f'data-frame-target="frame-{first.pk}"' in html
        assert f"<li>videos: {SEGMENT}</li>" in html

    def test_an_image_case_shows_no_video_sections(self, moderator: Any) -> None:
        case = make_case(kind="image")
        html = client_for(moderator).get(f"/cases/{case.pk}/").content.decode()
        assert "Contact sheet" not in html and "Reveal (blurred)" in html

    def test_an_outsider_cannot_open_the_page(
        self, videos: dict[str, Path], outsider: Any, moderator2: Any, lead: Any
    ) -> None:
        case, _ = _video(videos["six"])
        assert client_for(outsider).get(f"/cases/{case.pk}/").status_code == 403
        Case.objects.filter(pk=case.pk).update(restricted=True, claimed_by=lead)
        assert client_for(moderator2).get(f"/cases/{case.pk}/").status_code == 404


@pytest.mark.django_db
class FrameRevealTests:
    def test_a_frame_reveal_needs_a_reason(self, videos: dict[str, Path], moderator: Any) -> None:
        case, media = _video(videos["six"])
        frame = _sheet(media)[2]
        client = client_for(moderator)
        response = _reveal(client, case, media, frame, reason="  ")
        assert response.status_code == 400 and "reason" in response.json()["error"]
        assert not Reveal.objects.exists()
        assert client.get(f"/media/{media.pk}/frames/{frame.pk}").status_code == 404

    def test_a_frame_reveal_is_recorded_audited_counted_and_opens_that_frame_briefly(
        self, videos: dict[str, Path], moderator: Any, settings: Any
    ) -> None:
        case, media = _video(videos["six"])
        frame, other = _sheet(media)[2], _sheet(media)[3]
        client = client_for(moderator)
        body = _reveal(client, case, media, frame).json()
        assert body["url"] == f"/media/{media.pk}/frames/{frame.pk}"
        assert (body["kind"], body["mime"], body["frame"]) == ("frame", "image/jpeg", frame.pk)
        assert body["reveals_today"] == 1 == exposure_for(moderator).reveals_today
        reveal = Reveal.objects.get()
        assert (reveal.user, reveal.media, reveal.frame, reveal.case) == (
            moderator,
            media,
            frame,
            case,
        )
        revealed = AuditEvent.objects.get(verb="media.revealed")
        assert revealed.data["frame"] == frame.frame and revealed.data["timestamp"] == 2.0

        response = client.get(body["url"])
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        assert _body(response) == evidence_read_bytes(frame.thumbnail.path)
        assert {"no-store", "private"} <= set(response["Cache-Control"].replace(" ", "").split(","))
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Disposition"] == "inline"
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert AuditEvent.objects.filter(verb="media.frame_viewed").count() == 1

        # That frame only: not its neighbour, not the video itself.
        assert client.get(f"/media/{media.pk}/frames/{other.pk}").status_code == 404
        assert client.get(f"/media/{media.pk}").status_code == 404
        settings.SAFEGUARD_REVEAL_WINDOW_SECONDS = 0
        assert client.get(body["url"]).status_code == 404  # the window closed

    def test_frame_reveals_count_against_the_daily_limit(
        self, videos: dict[str, Path], moderator: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_REVEAL_SOFT_LIMIT = 1
        settings.SAFEGUARD_REVEAL_HARD_LIMIT = 2
        case, media = _video(videos["six"])
        sheet = _sheet(media)
        client = client_for(moderator)
        assert _reveal(client, case, media, sheet[0]).json()["needs_break"] is True
        assert _reveal(client, case, media, sheet[1]).status_code == 200
        refused = _reveal(client, case, media, sheet[2])
        assert refused.status_code == 400 and "limit" in refused.json()["error"]
        assert Reveal.objects.count() == 2

    def test_an_unknown_or_foreign_frame_is_not_found(
        self, videos: dict[str, Path], moderator: Any, outsider: Any
    ) -> None:
        case, media = _video(videos["six"])
        _, other_media = _video(videos["other"])
        foreign = _sheet(other_media)[0]
        client = client_for(moderator)
        assert _reveal(client, case, media, foreign).status_code == 404
        assert _reveal(client, case, media, "999999").status_code == 404
        assert _reveal(client, case, media, "two").status_code == 404
        assert _reveal(client_for(outsider), case, media, _sheet(media)[0]).status_code == 403
        assert not Reveal.objects.exists()

    def test_a_frame_without_a_thumbnail_is_refused(
        self, videos: dict[str, Path], moderator: Any
    ) -> None:
        case, media = _video(videos["six"])
        frame = _sheet(media)[0]
        MediaFrame.objects.filter(pk=frame.pk).update(thumbnail="")
        response = _reveal(client_for(moderator), case, media, frame)
        assert response.status_code == 400 and "contact sheet" in response.json()["error"]


@pytest.mark.django_db
class FrameViewTests:
    def test_the_frame_view_is_denied_to_outsiders_anonymous_and_moderators_who_did_not_reveal(
        self, videos: dict[str, Path], moderator: Any, moderator2: Any, outsider: Any
    ) -> None:
        case, media = _video(videos["six"])
        frame = _sheet(media)[1]
        url = f"/media/{media.pk}/frames/{frame.pk}"
        assert _reveal(client_for(moderator), case, media, frame).status_code == 200
        assert client_for(outsider).get(url).status_code == 403
        assert Client().get(url).status_code == 302
        assert client_for(moderator2).get(url).status_code == 404
        assert client_for(moderator).get(url).status_code == 200

    def test_a_frame_of_another_cases_media_is_not_found(
        self, videos: dict[str, Path], moderator: Any
    ) -> None:
        case, media = _video(videos["six"])
        other_case, other_media = _video(videos["other"])
        assert other_case.pk != case.pk
        frame = _sheet(other_media)[0]
        client = client_for(moderator)
        assert _reveal(client, other_case, other_media, frame).status_code == 200
        assert client.get(f"/media/{media.pk}/frames/{frame.pk}").status_code == 404
        assert client.get(f"/media/{other_media.pk}/frames/{frame.pk}").status_code == 200

    def test_a_frame_on_a_case_that_became_restricted_is_not_found(
        self, videos: dict[str, Path], moderator: Any, lead: Any
    ) -> None:
        case, media = _video(videos["six"])
        frame = _sheet(media)[0]
        client = client_for(moderator)
        assert _reveal(client, case, media, frame).status_code == 200
        Case.objects.filter(pk=case.pk).update(restricted=True, claimed_by=lead)
        assert client.get(f"/media/{media.pk}/frames/{frame.pk}").status_code == 404

    def test_frames_are_gone_once_the_evidence_is_purged(
        self, videos: dict[str, Path], moderator: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        case, media = _video(videos["six"])
        frame = _sheet(media)[0]
        client = client_for(moderator)
        assert _reveal(client, case, media, frame).status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            media_delete(media=media, actor=SystemActor("test"), reason="retention")
        assert client.get(f"/media/{media.pk}/frames/{frame.pk}").status_code == 404
        html = client.get(f"/cases/{case.pk}/").content.decode()
        assert 'class="sheet-frame"' not in html and "deleted with the evidence" in html


@pytest.mark.django_db
class VideoPlayerTests:
    def test_the_player_comes_only_from_revealing_the_video_through_the_media_view(
        self, videos: dict[str, Path], moderator: Any, outsider: Any
    ) -> None:
        case, media = _video(videos["six"])
        client = client_for(moderator)
        assert "<video" not in client.get(f"/cases/{case.pk}/").content.decode()
        assert _reveal(client_for(outsider), case, media).status_code == 403
        body = _reveal(client, case, media, reason="frames not enough: need the motion").json()
        assert (body["url"], body["kind"], body["mime"]) == (
            f"/media/{media.pk}",
            "video",
            "video/mp4",
        )
        assert Reveal.objects.get().frame is None
        response = client.get(body["url"])
        assert response.status_code == 200 and response["Content-Type"] == "video/mp4"
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert _body(response) == evidence_read_bytes(media.file.path)
        assert client_for(outsider).get(body["url"]).status_code == 403
        # Having seen the whole video, its contact-sheet frames open too (no extra reveal).
        frame = _sheet(media)[0]
        assert client.get(f"/media/{media.pk}/frames/{frame.pk}").status_code == 200

    def test_a_player_seeks_by_byte_ranges_and_one_reveal_is_audited_once(
        self, videos: dict[str, Path], moderator: Any
    ) -> None:
        case, media = _video(videos["six"])
        client = client_for(moderator)
        url = _reveal(client, case, media, reason="need the motion").json()["url"]
        data = evidence_read_bytes(media.file.path)
        whole = client.get(url)
        assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
        assert _body(whole) == data
        part = client.get(url, HTTP_RANGE="bytes=100-199")
        assert part.status_code == 206 and part.content == data[100:200]
        assert part["Content-Range"] == f"bytes 100-199/{len(data)}"
        tail = client.get(url, HTTP_RANGE="bytes=-10")
        assert tail.status_code == 206 and tail.content == data[-10:]
        beyond = client.get(url, HTTP_RANGE=f"bytes={len(data) + 5}-")
        assert beyond.status_code == 200  # unsatisfiable: the whole file, as without a range
        _body(beyond)
        assert AuditEvent.objects.filter(verb="media.viewed", object_id=str(media.pk)).count() == 1
