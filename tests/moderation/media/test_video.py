"""vPDQ frame hashing of videos and animated images (moderation.media.video), and hostile files.

No Django: these run on the media library alone.
"""

from __future__ import annotations

import os
import signal
import struct
import threading
import time
from pathlib import Path

import av
import numpy as np
import pdqhash
import pytest
from PIL import Image

from moderation.media.synthetic import write_synthetic_gif, write_synthetic_video
from moderation.media.video import (
    FrameHash,
    VideoError,
    VideoLimits,
    _DecoderServer,
    _gop_tails,
    hash_animation,
    hash_video,
    hash_video_isolated,
    parse_vpdq,
    prune_frames,
    vpdq_format,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 11, seconds=8)


def _reference_frames(path: Path) -> list[tuple[int, int, str]]:
    """Meta's reference selection and hashing, naively: decode every frame, RGB at full size,
    pdqhash (the reference C++ PDQ) on every int(fps)-th frame."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = max(1, int(float(stream.average_rate)))
        for number, frame in enumerate(container.decode(stream)):
            rgb = frame.to_ndarray(format="rgb24")
            if number % step == 0:
                bits, quality = pdqhash.compute(rgb)
                pdq = np.packbits(np.asarray(bits, dtype=bool)).tobytes().hex()
                out.append((number, int(quality), pdq))
    return out


class FrameSelectionTests:
    @pytest.mark.parametrize(
        ("codec", "name"), [("libx264", "h264.mp4"), ("libvpx-vp9", "vp9.webm")]
    )
    def test_frames_and_hashes_equal_the_naive_reference_pipeline(
        self, tmp_path: Path, codec: str, name: str
    ) -> None:
        path = write_synthetic_video(tmp_path / name, 5, seconds=6, codec=codec)
        result = hash_video(path)
        assert [(f.frame, f.quality, f.pdq) for f in result.frames] == _reference_frames(path)
        assert [f.timestamp for f in result.frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]

    def test_skipping_unchosen_non_reference_frames_changes_no_hash(self, clip: Path) -> None:
        assert hash_video(clip).frames == hash_video(clip, skip_nonref=False).frames

    def test_the_sampling_interval_is_configurable(self, clip: Path) -> None:
        frames = hash_video(clip, seconds_per_hash=0.5).frames
        assert [f.timestamp for f in frames][:4] == [0.0, 0.467, 0.933, 1.4]
        assert len(frames) == 18  # every int(0.5 * 15) = 7th frame, as the reference does

    def test_metadata_and_a_contact_sheet_subset(self, clip: Path) -> None:
        result = hash_video(clip, limits=VideoLimits(thumbnails=3))
        assert (result.width, result.height, result.codec) == (320, 240, "h264")
        assert (result.duration, result.frame_rate, result.frame_count) == (8.0, 15.0, 120)
        assert sorted(result.thumbnails) == [0, 45, 90]
        assert all(
            Image.open(__import__("io").BytesIO(j)).format == "JPEG"
            for j in result.thumbnails.values()
        )

    def test_an_animated_gif_is_sampled_by_its_frame_durations(self, tmp_path: Path) -> None:
        result = hash_animation(write_synthetic_gif(tmp_path / "a.gif", 3, seconds=3, fps=4))
        assert [(f.frame, f.timestamp) for f in result.frames] == [(0, 0.0), (4, 1.0), (8, 2.0)]
        assert result.frame_count == 12 and result.duration == 3.0


class VpdqFormatTests:
    def test_the_text_format_round_trips(self, clip: Path) -> None:
        frames = hash_video(clip).frames
        text = vpdq_format(frames)
        assert text.splitlines()[1] == (f"15,{frames[1].quality},{frames[1].pdq},1.000")
        assert parse_vpdq(text) == frames

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "no frames"),
            ("0,100,abc,0.0", "line 1: the pdq field"),
            ("0,100," + "0" * 64 + ",0.0\n1,200," + "0" * 64 + ",1.0", "line 2: frame"),
            ("0,100", "line 1: expected"),
        ],
    )
    def test_a_bad_file_names_its_first_bad_line(self, text: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_vpdq(text)

    def test_pruning_drops_frames_near_the_last_kept_one(self) -> None:
        a, b = "0" * 64, "0" * 63 + "f"  # 4 bits apart
        frames = [
            FrameHash(0, 0.0, 90, a),
            FrameHash(1, 1.0, 90, b),
            FrameHash(2, 2.0, 90, "f" * 64),
        ]
        assert [f.frame for f in prune_frames(frames, 4)] == [0, 2]
        assert [f.frame for f in prune_frames(frames, 3)] == [0, 1, 2]


def _truncated(path: Path, fraction: float) -> bytes:
    data = path.read_bytes()
    return data[: int(len(data) * fraction)]


class HostileVideoTests:
    """Each ends in a VideoError with a reason — in the child process, never a crash here."""

    def test_a_file_cut_before_its_index_is_refused(self, clip: Path, tmp_path: Path) -> None:
        faststart = write_synthetic_video(tmp_path / "f.mp4", 2, seconds=4)
        cut = tmp_path / "cut.mp4"
        cut.write_bytes(_truncated(faststart, 0.5))  # moov is at the end: lost
        with pytest.raises(VideoError):
            hash_video_isolated(cut)

    def test_bogus_boxes_and_a_zero_length_stream_are_refused(self, tmp_path: Path) -> None:
        bogus = tmp_path / "bogus.mp4"
        bogus.write_bytes(
            struct.pack(">I", 24)
            + b"ftypisom"
            + b"\0\0\0\0isomavc1"
            + struct.pack(">I", 0xFFFFFFF0)
            + b"moov"
            + b"\xde\xad" * 100
        )
        empty = tmp_path / "empty.mp4"
        empty.write_bytes(struct.pack(">I", 24) + b"ftypisom" + b"\0\0\0\0isomavc1")
        for path in (bogus, empty):
            with pytest.raises(VideoError):
                hash_video_isolated(path)

    def test_limits_are_checked_from_the_header_before_decoding(self, clip: Path) -> None:
        with pytest.raises(VideoError, match="more than the 5 s allowed"):
            hash_video_isolated(clip, limits=VideoLimits(max_seconds=5))
        with pytest.raises(VideoError, match="pixels"):
            hash_video_isolated(clip, limits=VideoLimits(max_pixels=320 * 200))
        with pytest.raises(VideoError, match="frames"):
            hash_video_isolated(clip, limits=VideoLimits(max_frames=100))

    def test_a_decoder_over_its_memory_or_time_is_stopped_not_the_worker(self, clip: Path) -> None:
        with pytest.raises(VideoError):
            hash_video_isolated(clip, limits=VideoLimits(memory_bytes=64 * 1024**2))
        with pytest.raises(VideoError, match="longer than"):
            hash_video_isolated(clip, limits=VideoLimits(timeout_seconds=0.01))

    def test_an_animated_image_bomb_is_refused(self, tmp_path: Path) -> None:
        frames = [Image.new("L", (64, 64), n % 255) for n in range(300)]
        path = tmp_path / "many.gif"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=20)
        with pytest.raises(VideoError, match="frames"):
            hash_video_isolated(path, limits=VideoLimits(max_frames=200), animated=True)

    def test_the_isolated_child_returns_what_the_library_returns(self, clip: Path) -> None:
        here, child = hash_video(clip), hash_video_isolated(clip)
        assert child.frames == here.frames and child.thumbnails == here.thumbnails


def _decoder_children(server: int, timeout: float = 10.0) -> list[int]:
    """The decoder server's forked children, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = Path(f"/proc/{server}/task/{server}/children").read_text().split()
        if text:
            return [int(pid) for pid in text]
        time.sleep(0.02)
    raise AssertionError("the decoder server forked no child")


class DecoderServerTests:
    """hash_video_isolated's children are forked by a long-lived decoder server (no interpreter
    start per file); each file still gets a fresh limited process, and failures stay there."""

    def test_files_are_decoded_by_children_of_one_server_without_the_workers_secrets(
        self, clip: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/x")
        _DecoderServer.close_all()  # a server started after the secret was set
        first = hash_video_isolated(clip)
        server = _DecoderServer.pid()
        assert server is not None
        environ = Path(f"/proc/{server}/environ").read_bytes()
        assert b"DATABASE_URL" not in environ and b"SECRET_KEY" not in environ
        assert os.getpgid(server) == server  # its own process group: the worker's signals skip it
        assert hash_video_isolated(clip).frames == first.frames
        assert _DecoderServer.pid() == server  # reused, not restarted

    def test_a_killed_child_is_a_clear_error_and_the_server_carries_on(
        self, clip: Path, tmp_path: Path
    ) -> None:
        hash_video_isolated(clip)
        server = _DecoderServer.pid()
        assert server is not None
        fifo = tmp_path / "never-written.mp4"
        os.mkfifo(fifo)  # the child blocks opening it, until killed
        errors: list[BaseException] = []

        def hash_fifo() -> None:
            try:
                hash_video_isolated(fifo)
            except BaseException as exc:  # noqa: BLE001 — collected for the assertion
                errors.append(exc)

        thread = threading.Thread(target=hash_fifo)
        thread.start()
        (child,) = _decoder_children(server)
        os.kill(child, signal.SIGKILL)
        thread.join(timeout=30)
        assert len(errors) == 1 and isinstance(errors[0], VideoError)
        assert "stopped by signal 9" in str(errors[0])
        assert hash_video_isolated(clip).frames == hash_video(clip).frames
        assert _DecoderServer.pid() == server

    def test_a_server_that_died_while_idle_is_replaced(self, clip: Path) -> None:
        expected = hash_video_isolated(clip).frames
        server = _DecoderServer.pid()
        assert server is not None
        os.kill(server, signal.SIGKILL)
        while Path(f"/proc/{server}/status").read_text().find("State:\tZ") < 0:
            time.sleep(0.01)  # a zombie: dead, not yet reaped
        assert hash_video_isolated(clip).frames == expected
        assert _DecoderServer.pid() not in (None, server)

    def test_a_timeout_kills_the_server_and_the_next_file_gets_a_new_one(
        self, clip: Path, tmp_path: Path
    ) -> None:
        hash_video_isolated(clip)
        server = _DecoderServer.pid()
        fifo = tmp_path / "stalled.mp4"
        os.mkfifo(fifo)
        with pytest.raises(VideoError, match="longer than"):
            hash_video_isolated(fifo, limits=VideoLimits(timeout_seconds=0.5))
        assert not Path(f"/proc/{server}").exists()  # killed and reaped, with its child
        assert hash_video_isolated(clip).frames == hash_video(clip).frames
        assert _DecoderServer.pid() not in (None, server)


class GopTailTests:
    def test_packets_after_a_groups_last_chosen_frame_are_not_needed(self) -> None:
        # decode order (pts, key): two closed groups of pictures of 6 frames.
        packets = [(0, True), (3, False), (1, False), (2, False), (5, False), (4, False)]
        packets += [(6, True), (9, False), (7, False), (8, False), (11, False), (10, False)]
        assert _gop_tails(packets, chosen={0, 2}) == {4, 5, 6, 7, 8, 9, 10, 11}
        assert _gop_tails(packets, chosen={0, 7}) == {1, 2, 3, 4, 5, 9, 10, 11}

    def test_an_open_group_of_pictures_turns_it_off(self) -> None:
        # After the second key packet (pts 6) comes a frame shown before it: a leading picture.
        packets = [(0, True), (2, False), (1, False), (6, True), (4, False), (5, False)]
        assert _gop_tails(packets, chosen={0}) == set()
