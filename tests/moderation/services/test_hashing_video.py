"""Videos and animated images through intake and hashing: frames stored, matched against image
and video lists, shown by the API, carried (as hashes only) by packets."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from core.audit import SystemActor
from moderation.media.hashing import compute_hashes
from moderation.media.synthetic import synthetic_image, write_synthetic_gif, write_synthetic_video
from moderation.media.video import hash_image_isolated, hash_video, vpdq_format
from moderation.models import HashList, Match, MediaFrame
from moderation.services.hashlists import hash_list_upsert
from tests.conftest import client_for
from tests.moderation.factories import make_video_item

ACTOR = SystemActor("test")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "listed": write_synthetic_video(root / "listed.mp4", 7, seconds=10),
        "reencoded": write_synthetic_video(
            root / "reencoded.mp4", 7, seconds=10, width=480, height=360, crf=35, logo=True
        ),
        "bar": write_synthetic_video(root / "bar.mp4", 7, seconds=10, bar=4),
        "longer": write_synthetic_video(root / "longer.mp4", 7, seconds=16),
        "unrelated": write_synthetic_video(root / "unrelated.mp4", 99, seconds=10),
        "webm": write_synthetic_video(root / "listed.webm", 7, seconds=10, codec="libvpx-vp9"),
        "gif": write_synthetic_gif(root / "anim.gif", 7, seconds=4),
    }


def _video_list(path: Path, tmp_path: Path) -> HashList:
    vpdq = tmp_path / "known-video.txt"
    vpdq.write_text(vpdq_format(hash_video(path).frames))
    call_command(
        "import_hashes", str(vpdq), "--list", "videos", "--algorithm", "vpdq", "--category", "A"
    )
    return HashList.objects.get(name="videos")


@pytest.mark.django_db
class VideoIntakeTests:
    def test_a_video_gets_its_frame_hashes_and_metadata(self, videos: dict[str, Path]) -> None:
        media = make_video_item(videos["listed"]).media
        assert media.hash_status == "done", media.hash_error
        assert (media.duration, media.codec, media.frame_rate) == (10.0, "h264", 15.0)
        assert media.frame_count == 150 and (media.width, media.height) == (320, 240)
        frames = list(media.frames.all())
        assert [f.frame for f in frames] == list(range(0, 150, 15))
        assert [f.timestamp for f in frames] == [float(n) for n in range(10)]
        expected = hash_video(videos["listed"]).frames
        assert [(f.pdq, f.quality) for f in frames] == [(e.pdq, e.quality) for e in expected]
        assert all(f.thumbnail for f in frames)  # 10 frames: all on the contact sheet

    def test_an_animated_gif_is_an_image_and_a_short_video(self, videos: dict[str, Path]) -> None:
        media = make_video_item(videos["gif"], kind="image").media
        assert media.hash_status == "done", media.hash_error
        assert media.pdq and media.codec == "gif" and media.duration == 4.0
        assert media.frames.count() == 4


@pytest.mark.django_db
class VideoMatchingTests:
    def test_a_re_encode_with_a_logo_a_thin_bar_and_a_longer_cut_match_the_listed_video(
        self, videos: dict[str, Path], tmp_path: Path
    ) -> None:
        hash_list = _video_list(videos["listed"], tmp_path)
        for name in ("reencoded", "bar", "longer", "webm"):
            media = make_video_item(videos[name]).media
            match = Match.objects.get(media=media)
            assert match.hash_list == hash_list and match.algorithm == "vpdq", name
            assert match.listed_percent >= hash_list.listed_percent
            assert match.segments and match.segments[0]["query_start"] == 0.0
            assert "listed_start" in match.segments[0]
            assert media.item.case.category.code == "known_csam"

    def test_an_unrelated_video_does_not_match(
        self, videos: dict[str, Path], tmp_path: Path
    ) -> None:
        _video_list(videos["listed"], tmp_path)
        media = make_video_item(videos["unrelated"]).media
        assert not Match.objects.filter(media=media).exists()

    def test_a_known_image_inside_a_video_is_found_with_where_it_shows(
        self, videos: dict[str, Path], tmp_path: Path
    ) -> None:
        still = tmp_path / "still.png"
        frame = MediaFrame(pdq=hash_video(videos["listed"]).frames[6].pdq)
        hash_list, _ = hash_list_upsert(name="images", algorithm="pdq", actor=ACTOR)
        hash_list.hashes.create(value=frame.pdq, category="B")
        media = make_video_item(videos["reencoded"]).media
        match = Match.objects.get(media=media, hash_list=hash_list)
        assert match.algorithm == "pdq" and match.distance <= 31
        assert any(s["query_start"] <= 6.0 <= s["query_end"] for s in match.segments)
        assert not still.exists()

    def test_a_new_video_list_finds_videos_already_stored(
        self, videos: dict[str, Path], tmp_path: Path, django_capture_on_commit_callbacks: Any
    ) -> None:
        media = make_video_item(videos["reencoded"]).media
        assert not Match.objects.filter(media=media).exists()
        with django_capture_on_commit_callbacks(execute=True):
            _video_list(videos["listed"], tmp_path)
        assert Match.objects.filter(media=media, algorithm="vpdq").exists()


@pytest.mark.django_db
class VideoApiAndPacketTests:
    def test_the_item_api_shows_video_metadata_and_match_segments(
        self, videos: dict[str, Path], tmp_path: Path, lead: Any
    ) -> None:
        _video_list(videos["listed"], tmp_path)
        item = make_video_item(videos["reencoded"])
        body = client_for(lead).get(f"/api/v1/items/{item.pk}").json()
        media = body["media"]
        assert media["duration"] == 10.0 and media["codec"] == "h264"
        assert media["frame_count"] == 150 and media["hashed_frames"] == 10
        assert (media["width"], media["height"]) == (480, 360)
        [match] = body["matches"]
        assert match["algorithm"] == "vpdq" and match["segments"]
        assert match["listed_percent"] >= 80


class ImageFormatTests:
    def test_heic_and_avif_photos_hash_like_a_png_of_the_same_pixels(self, tmp_path: Path) -> None:
        import pillow_heif
        from PIL import Image

        from moderation.media.synthetic import synthetic_image

        pillow_heif.register_heif_opener()
        image = synthetic_image(3, 640, 480)
        image.save(tmp_path / "same.png")
        image.save(tmp_path / "photo.heic", quality=95)
        image.save(tmp_path / "photo.avif", quality=95)
        png = compute_hashes(tmp_path / "same.png")
        for name in ("photo.heic", "photo.avif"):
            hashes = compute_hashes(tmp_path / name)
            assert (hashes.width, hashes.height) == (640, 480)
            distance = bin(int(hashes.pdq, 16) ^ int(png.pdq, 16)).count("1")
            assert distance <= 16, (name, distance)
        assert Image.open(tmp_path / "photo.heic").format == "HEIF"


@pytest.mark.django_db
class HostileVideoIntakeTests:
    def test_a_damaged_video_is_stored_and_reviewable_with_the_reason_it_failed(
        self, videos: dict[str, Path], tmp_path: Path, moderator: Any
    ) -> None:
        data = videos["listed"].read_bytes()
        cut = tmp_path / "cut.mp4"
        cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: lost
        item = make_video_item(cut)
        media = item.media
        assert media.hash_status == "failed" and media.hash_error
        assert item.case is not None and not media.frames.exists()
        page = client_for(moderator).get(f"/cases/{item.case.pk}/")
        assert page.status_code == 200 and media.hash_error in page.content.decode()

    def test_a_video_that_cannot_be_decoded_is_still_matched_by_its_exact_digest(
        self, videos: dict[str, Path], tmp_path: Path
    ) -> None:
        data = videos["listed"].read_bytes()
        cut = tmp_path / "cut2.mp4"
        cut.write_bytes(data[: len(data) // 2])
        listed, _ = hash_list_upsert(name="MD5", algorithm="md5", actor=ACTOR)
        listed.hashes.create(
            value=hashlib.md5(cut.read_bytes(), usedforsecurity=False).hexdigest(), category="A"
        )
        media = make_video_item(cut).media
        assert media.hash_status == "failed"
        assert Match.objects.filter(media=media, hash_list=listed).exists()


@pytest.mark.django_db
class PhonePhotoIntakeTests:
    def test_a_heic_photo_is_hashed_in_the_limited_child_like_in_process(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "photo.heic"
        synthetic_image(21, 480, 360).save(path, quality=90)
        in_process = compute_hashes(path)
        assert hash_image_isolated(path, max_pixels=10_000_000) == in_process
        media = make_video_item(path, kind="image").media
        assert media.hash_status == "done" and media.mime == "image/heic"
        assert (media.pdq, media.width) == (in_process.pdq, 480)

    def test_a_damaged_heic_fails_cleanly_and_keeps_its_digests(self, tmp_path: Path) -> None:
        path = tmp_path / "photo.heic"
        synthetic_image(22, 480, 360).save(path, quality=90)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
        media = make_video_item(path, kind="image").media
        assert media.hash_status == "failed" and media.hash_error and media.md5
