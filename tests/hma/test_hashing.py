"""Hashing uploads for /h/hash: the worker's hashes, computed in the limited child process (never
decoded in the web process), hostile or slow files refused with a 400."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import PIL.Image
import pytest
from rest_framework.test import APIClient

from hma import hashing
from moderation.media.hashing import compute_hashes
from moderation.media.synthetic import write_synthetic_video
from moderation.media.video import VideoError, hash_video
from tests.hma.factories import jpeg, upload
from tests.moderation.media.files import png_header_only


@contextlib.contextmanager
def no_decoding_here() -> Iterator[None]:
    """Opening an image or a video in this (the web) process fails the test; the decoder's
    child process is unaffected."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded in the web process")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PIL.Image, "open", refuse)
        patch.setattr(av, "open", refuse)
        yield


@pytest.mark.django_db
class PhotoHashingTests:
    def test_a_photo_hashes_as_the_worker_hashes_it_in_the_child_process(
        self, tmp_path: Path, platform_client: APIClient
    ) -> None:
        data = jpeg(8)
        with no_decoding_here():
            response = platform_client.post("/h/hash", upload("photo", data, "x.jpg"))
        assert response.status_code == 200, response.content
        body = response.json()
        (tmp_path / "x.jpg").write_bytes(data)
        expected = compute_hashes(tmp_path / "x.jpg")
        assert body == {
            "pdq": expected.pdq,
            "photo_md5": expected.md5,
            "sha256": expected.sha256,
            "sha1": expected.sha1,
            "phash": expected.phash,
            "dhash": expected.dhash,
        }

    def test_digests_alone_start_no_decoder(
        self, platform_client: APIClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a decoder was started")

        monkeypatch.setattr(hashing, "hash_image_isolated", refuse)
        data = jpeg(9)
        response = platform_client.post("/h/hash?types=photo_md5,sha256", upload("photo", data))
        assert response.json() == {
            "photo_md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def test_a_decompression_bomb_is_refused_by_the_child(
        self, platform_client: APIClient, settings: Any
    ) -> None:
        settings.SAFEGUARD_MAX_PIXELS = 1_000_000
        response = platform_client.post(
            "/h/hash", upload("photo", png_header_only(20_000, 20_000), "b.png")
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "unhashable_media"

    def test_the_types_parameter_and_hma_signal_types_choose_the_signals(
        self, platform_client: APIClient, settings: Any
    ) -> None:
        assert set(
            platform_client.post("/h/hash?types=pdq,dhash", upload("photo", jpeg(1))).json()
        ) == {
            "pdq",
            "dhash",
        }
        for bad in ("types=video_md5", "types=nope", "types="):
            response = platform_client.post(f"/h/hash?{bad}", upload("photo", jpeg(1)))
            assert response.status_code == 400, bad
        settings.HMA_SIGNAL_TYPES = ["pdq", "video_md5", "vpdq"]
        assert set(platform_client.post("/h/hash", upload("photo", jpeg(1))).json()) == {"pdq"}
        assert (
            platform_client.post("/h/hash?types=sha256", upload("photo", jpeg(1))).status_code
            == 400
        )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("hma-clip") / "c.mp4", 3, seconds=4)


@pytest.mark.django_db
class VideoHashingTests:
    def test_a_video_hashes_to_its_md5_and_its_vpdq_frames(
        self, clip: Path, platform_client: APIClient
    ) -> None:
        data = clip.read_bytes()
        with no_decoding_here():
            response = platform_client.post("/h/hash", upload("video", data, "c.mp4"))
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"video_md5", "vpdq", "sha256", "sha1"}
        assert body["video_md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
        frames = hash_video(clip).frames
        assert json.loads(body["vpdq"]) == [
            f"{f.pdq},{f.quality},{f.timestamp:.3f}" for f in frames
        ]

    def test_a_decoder_that_gives_up_is_a_400_not_a_500(
        self, clip: Path, platform_client: APIClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def too_slow(*args: Any, **kwargs: Any) -> Any:
            raise VideoError("decoding took longer than 20 s and was stopped")

        monkeypatch.setattr(hashing, "hash_video_isolated", too_slow)
        response = platform_client.post("/h/hash", upload("video", clip.read_bytes()))
        assert response.status_code == 400
        assert "took longer than 20 s" in response.json()["message"]

    def test_the_child_gets_the_hma_time_limit(
        self, clip: Path, platform_client: APIClient, monkeypatch: pytest.MonkeyPatch, settings: Any
    ) -> None:
        settings.HMA_HASH_TIMEOUT_SECONDS = 7
        seen: dict[str, Any] = {}
        real = hashing.hash_video_isolated

        def spy(path: Any, **kwargs: Any) -> Any:
            seen.update(kwargs)
            return real(path, **kwargs)

        monkeypatch.setattr(hashing, "hash_video_isolated", spy)
        platform_client.post("/h/hash?types=vpdq", upload("video", clip.read_bytes()))
        limits = seen["limits"]
        assert (limits.timeout_seconds, limits.cpu_seconds, limits.thumbnails) == (7, 7, 1)
