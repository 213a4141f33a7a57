"""Video and animated images as frame hashes: Meta's vPDQ, decoded in a child process.

vPDQ (``facebook/ThreatExchange``, ``vpdq/``) hashes a video as the PDQ hashes of frames sampled
at an interval, each with its frame number, quality and timestamp. This module computes the same
frames with PyAV (FFmpeg inside its wheel) and the project's numpy PDQ
(:func:`moderation.media.hashing.pdq_from_luma`, bit-identical to ``pdqhash``):

1. Frames are chosen as the reference does: decoded frames are numbered in presentation order
   from 0; frame ``n`` is hashed when ``n % int(seconds_per_hash * fps) == 0``, with ``fps`` the
   stream's average frame rate (its real base rate when that is unknown). Its timestamp is
   ``n / fps``.
2. Each chosen frame is converted to RGB24 at its full size with swscale's area filter (as the
   reference's ``sws_scale(..., SWS_AREA)``), to float luma ``0.299 R + 0.587 G + 0.114 B``
   (the reference's ``fillFloatLumaFromRGB``), and hashed with PDQ at that size.
3. Speed, without changing a single hash: only chosen frames are converted to RGB (the naive
   pipeline converts every frame), and for codecs whose non-reference frames nothing else
   depends on (H.264, HEVC, MPEG-4), the decoder skips the non-reference frames that are not
   chosen — their numbers come from the packets' presentation timestamps, read in a first pass
   over the container that decodes nothing. ``benchmarks/VIDEO.md`` has the figures.

Animated GIF, WebP and PNG are hashed the same way from Pillow's frames: the frame on screen at
``0, s, 2s, …`` seconds (``s = seconds_per_hash``) by the frames' durations.

Hostile files: decoding runs in a child process (:func:`hash_video_isolated`) with an address
space limit, a CPU-time limit and a wall-clock timeout, so a decoder crash, a decompression bomb
or an endless stream ends that child — never the worker — and becomes a :class:`VideoError`.
The child is forked, one per file, by a long-lived decoder server (:class:`_DecoderServer`)
that has the imports loaded, which saves an interpreter start per file (~0.2 s of CPU).
Limits on duration, frames and pixels per frame are checked from the container's header before
any frame is decoded.

A library: no Django. ``python -m moderation.media.video --serve`` is the decoder server;
``python -m moderation.media.video FILE --out DIR`` runs one child's work directly.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageSequence

from .formats import register as register_formats
from .hashing import HashingError, MediaHashes, compute_hashes, hamming_hex, pdq_from_luma

# Codecs whose non-reference frames no other frame is predicted from: skipping the ones we
# don't hash leaves every other decoded frame bit-identical (tests check it per codec).
_SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "mpeg4"})
# The reference's luma weights (pdqhashing.cpp, fillFloatLumaFromRGB).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
THUMBNAIL_SIZE = 320  # long side of a contact-sheet frame, JPEG


class VideoError(Exception):
    """The file could not be hashed as a video (unreadable, hostile, or over a limit). The
    message is safe to store: it never contains file content."""


@dataclass(frozen=True)
class VideoLimits:
    max_seconds: float = 30 * 60
    max_frames: int = 30 * 60 * 120
    max_pixels: int = 4096 * 2304
    max_hashed_frames: int = 7200
    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 600
    timeout_seconds: float = 900.0
    thumbnails: int = 60


@dataclass(frozen=True)
class FrameHash:
    frame: int
    timestamp: float
    quality: int
    pdq: str

    def vpdq_line(self) -> str:
        """One line of Meta's vpdq text format: ``frame,quality,pdq,timestamp``."""
        return f"{self.frame},{self.quality},{self.pdq},{self.timestamp:.3f}"


@dataclass
class VideoHashes:
    """What a video (or an animated image) hashes to, and what the console shows of it."""

    duration: float
    width: int
    height: int
    codec: str
    frame_rate: float
    frame_count: int
    frames: list[FrameHash]
    # Frame number -> small JPEG of that frame, for the contact sheet (an evenly spaced subset
    # of the hashed frames). Kept in private storage; never leaves the system.
    thumbnails: dict[int, bytes] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("thumbnails")
        return data


# ---------------------------------------------------------------------------------------------
# vpdq text format


def vpdq_format(frames: list[FrameHash]) -> str:
    return "".join(f"{f.vpdq_line()}\n" for f in frames)


def parse_vpdq(text: str) -> list[FrameHash]:
    """Frames from Meta's vpdq text format; raises ValueError naming the first bad line."""
    frames = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        try:
            if len(parts) < 4:
                raise ValueError("expected frame,quality,pdq,timestamp")
            frame, quality, pdq, timestamp = int(parts[0]), int(parts[1]), parts[2], parts[3]
            pdq = pdq.strip().lower()
            if len(pdq) != 64 or any(c not in "0123456789abcdef" for c in pdq):
                raise ValueError("the pdq field is not 64 hex characters")
            if not 0 <= quality <= 100 or frame < 0:
                raise ValueError("frame must be >= 0 and quality 0-100")
            frames.append(FrameHash(frame, round(float(timestamp), 3), quality, pdq))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    if not frames:
        raise ValueError("no frames")
    return frames


def prune_frames(frames: list[FrameHash], distance: int) -> list[FrameHash]:
    """vPDQ's optional pruning: drop each frame within ``distance`` bits of the last kept one."""
    kept: list[FrameHash] = []
    for frame in frames:
        if not kept or hamming_hex(frame.pdq, kept[-1].pdq) > distance:
            kept.append(frame)
    return kept


# ---------------------------------------------------------------------------------------------
# Decoding


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _LUMA


def _thumbnail(rgb: np.ndarray) -> bytes:
    image = Image.fromarray(rgb)
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()


def _frame_thumbnail(frame: Any, width: int, height: int) -> bytes:
    """A contact-sheet JPEG straight from the decoded frame, scaled by swscale (a tenth of the
    cost of scaling the full RGB copy with Pillow)."""
    scale = THUMBNAIL_SIZE / max(width, height)
    small = frame.reformat(
        width=max(1, round(width * scale)),
        height=max(1, round(height * scale)),
        format="rgb24",
        interpolation="AREA",
    )
    out = io.BytesIO()
    Image.fromarray(small.to_ndarray()).save(out, format="JPEG", quality=70)
    return out.getvalue()


def _thumbnail_every(hashed: int, wanted: int) -> int:
    return max(1, -(-hashed // max(1, wanted)))


def _frame_rate(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate:
            return Fraction(rate)
    raise VideoError("the video stream declares no frame rate")


def hash_video(
    path: str | os.PathLike[str],
    *,
    seconds_per_hash: float = 1.0,
    limits: VideoLimits = VideoLimits(),
    skip_nonref: bool = True,
) -> VideoHashes:
    """vPDQ frame hashes of a video file, in this process (see the module docstring).

    ``skip_nonref=False`` decodes every frame (the reference's behaviour; tests compare both).
    Raises :class:`VideoError`.
    """
    import av  # the FFmpeg binding is loaded only where videos are decoded

    try:
        container = av.open(os.fspath(path), options={"probesize": "5000000"})
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"not a readable video: {type(exc).__name__}") from None
    with container:
        if not container.streams.video:
            raise VideoError("the file has no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        if width < 1 or height < 1:
            raise VideoError("the video declares no picture size")
        if width * height > limits.max_pixels:
            raise VideoError(
                f"frames of {width}x{height} pixels, more than the {limits.max_pixels:,} allowed"
            )
        fps = _frame_rate(stream)
        frame_mod = max(1, int(seconds_per_hash * float(fps)))

        # First pass: every video packet's presentation time and key flag, in decode order,
        # without decoding.
        try:
            packets = [
                (p.pts, p.is_keyframe)
                for p in container.demux(stream)
                if p.size and p.pts is not None
            ]
        except av.error.FFmpegError as exc:
            raise VideoError(f"the container is damaged: {type(exc).__name__}") from None
        pts = [p for p, _ in packets]
        if not pts:
            raise VideoError("the video stream holds no frames")
        if len(pts) > limits.max_frames:
            raise VideoError(f"{len(pts):,} frames, more than the {limits.max_frames:,} allowed")
        time_base = stream.time_base or Fraction(1, 1)
        duration = float((max(pts) - min(pts)) * time_base) + 1 / float(fps)
        if duration > limits.max_seconds:
            raise VideoError(
                f"{duration:.0f} s long, more than the {limits.max_seconds:.0f} s allowed"
            )
        ordered = sorted(pts)
        unique = len(set(ordered)) == len(ordered)
        index = {p: i for i, p in enumerate(ordered)} if unique else {}
        chosen = {p for i, p in enumerate(ordered) if i % frame_mod == 0}
        hashed_total = -(-len(ordered) // frame_mod)
        if hashed_total > limits.max_hashed_frames:
            raise VideoError(
                f"{hashed_total:,} frames to hash, more than the {limits.max_hashed_frames:,} "
                "allowed"
            )
        thumb_every = _thumbnail_every(hashed_total, limits.thumbnails)
        skipping = skip_nonref and unique and codec in _SKIP_NONREF_CODECS
        tails = _gop_tails(packets, chosen) if skip_nonref and unique else set()
        unneeded = {packets[i][0] for i in tails}  # by presentation time: unique, checked above

        container.seek(0)
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_type = "SLICE"  # frame threads would reorder the per-packet skip switch
        frames: list[FrameHash] = []
        thumbnails: dict[int, bytes] = {}
        decoded = 0
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts in unneeded:
                    continue  # after a GOP's last chosen frame: nothing needs it
                if skipping:
                    context.skip_frame = (
                        "DEFAULT" if packet.pts is None or packet.pts in chosen else "NONREF"
                    )
                for frame in packet.decode():
                    number = index.get(frame.pts, -1) if unique else decoded
                    decoded += 1
                    if number < 0 or number % frame_mod:
                        continue
                    rgb = frame.to_ndarray(format="rgb24", interpolation="AREA")
                    pdq, quality = pdq_from_luma(_luma(rgb))
                    frames.append(FrameHash(number, round(number / float(fps), 3), quality, pdq))
                    if (len(frames) - 1) % thumb_every == 0:
                        thumbnails[number] = _frame_thumbnail(frame, width, height)
        except av.error.FFmpegError as exc:
            # The reference stops at a frame that fails to decode; so do we, and say where.
            if not frames:
                raise VideoError(f"no frame could be decoded: {type(exc).__name__}") from None
            raise VideoError(
                f"decoding failed after {len(frames)} hashed frames: {type(exc).__name__}"
            ) from None
        if not frames:
            raise VideoError("no frame could be decoded")
        if (skipping or unneeded) and len(frames) != hashed_total:
            # Skipping lost a chosen frame (a container whose packets didn't replay as read):
            # decode everything instead, as the reference does.
            return hash_video(
                path, seconds_per_hash=seconds_per_hash, limits=limits, skip_nonref=False
            )
        frames.sort(key=lambda f: f.frame)
        return VideoHashes(
            duration=round(duration, 3),
            width=width,
            height=height,
            codec=codec,
            frame_rate=round(float(fps), 3),
            frame_count=len(ordered),
            frames=frames,
            thumbnails=thumbnails,
        )


def _gop_tails(packets: list[tuple[int, bool]], chosen: set[int]) -> set[int]:
    """Decode-order positions of packets nothing needs: in each group of pictures (from a key
    packet to the next), those after the last chosen frame — a frame is only ever predicted
    from frames decoded before it, and a key packet starts afresh — and whole groups with no
    chosen frame. Empty (so: decode everything) if the stream has leading pictures, frames
    after a key packet in decode order but shown before it: an open group of pictures, whose
    leading frames may be predicted from the group before.
    """
    keys = [i for i, (_, key) in enumerate(packets) if key]
    if not keys or keys[0] != 0:
        return set()
    for start in keys[1:]:
        key_pts = packets[start][0]
        window = packets[start + 1 : start + 17]  # leading pictures follow their key at once
        if any(pts < key_pts for pts, _ in window):
            return set()
    unneeded: set[int] = set()
    bounds = [*keys, len(packets)]
    for start, end in itertools.pairwise(bounds):
        last = max((i for i in range(start, end) if packets[i][0] in chosen), default=start - 1)
        unneeded.update(range(last + 1, end))
    return unneeded


def is_animated(path: str | os.PathLike[str]) -> bool:
    register_formats()
    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False)) and image.format in (
                "GIF",
                "WEBP",
                "PNG",
            )
    except Exception:  # noqa: BLE001 — not an image Pillow knows: not an animated one
        return False


def hash_animation(
    path: str | os.PathLike[str],
    *,
    seconds_per_hash: float = 1.0,
    limits: VideoLimits = VideoLimits(),
) -> VideoHashes:
    """vPDQ-style frame hashes of an animated GIF, WebP or PNG: the frame on screen at every
    ``seconds_per_hash`` seconds (frame numbers are the animation's own)."""
    with Image.open(path) as image:
        width, height = image.size
        if width * height > limits.max_pixels:
            raise VideoError(f"frames of {width}x{height} pixels, more than allowed")
        count = getattr(image, "n_frames", 1)
        if count > limits.max_frames:
            raise VideoError(f"{count:,} frames, more than the {limits.max_frames:,} allowed")
        # Whole milliseconds, as the formats store them: no float drift adds a sample at the end.
        durations = [
            max(10, int(frame.info.get("duration") or 100))
            for frame in ImageSequence.Iterator(image)
        ]
        starts = np.concatenate([[0], np.cumsum(durations)[:-1]]).astype(np.int64)
        total_ms = int(sum(durations))
        total = total_ms / 1000
        if total > limits.max_seconds:
            raise VideoError(f"{total:.0f} s long, more than the {limits.max_seconds:.0f} s")
        step_ms = max(1, round(seconds_per_hash * 1000))
        marks = range(0, total_ms, step_ms)
        wanted = sorted({int(np.searchsorted(starts, t, side="right") - 1) for t in marks})
        thumb_every = _thumbnail_every(len(wanted), limits.thumbnails)
        frames: list[FrameHash] = []
        thumbnails: dict[int, bytes] = {}
        for position, number in enumerate(wanted):
            image.seek(number)
            rgb = np.asarray(image.convert("RGB"))
            pdq, quality = pdq_from_luma(_luma(rgb))
            frames.append(FrameHash(number, round(int(starts[number]) / 1000, 3), quality, pdq))
            if position % thumb_every == 0:
                thumbnails[number] = _thumbnail(rgb)
        return VideoHashes(
            duration=round(total, 3),
            width=width,
            height=height,
            codec=str(image.format).lower(),
            frame_rate=round(count / total, 3) if total else 0.0,
            frame_count=count,
            frames=frames,
            thumbnails=thumbnails,
        )


# ---------------------------------------------------------------------------------------------
# The child process


def _limit_child(limits: VideoLimits) -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def hash_video_isolated(
    path: str | os.PathLike[str],
    *,
    seconds_per_hash: float = 1.0,
    limits: VideoLimits = VideoLimits(),
    animated: bool = False,
) -> VideoHashes:
    """:func:`hash_video` (or :func:`hash_animation`) in a child process with hard limits.

    The child writes the hashes as JSON and the thumbnails as files into a private temporary
    directory; whatever happens to it — a crash, the memory or CPU limit, the timeout — this
    process only sees a :class:`VideoError`.
    """
    extra = ["--seconds-per-hash", str(seconds_per_hash)] + (["--animated"] if animated else [])
    with _run_child(path, limits, extra) as out:
        data = json.loads((out / "hashes.json").read_text())
        frames = [FrameHash(**f) for f in data.pop("frames")]
        thumbnails = {int(p.stem): p.read_bytes() for p in out.glob("*.jpg") if p.stem.isdigit()}
        return VideoHashes(**data, frames=frames, thumbnails=thumbnails)


def hash_image_isolated(
    path: str | os.PathLike[str], *, max_pixels: int, limits: VideoLimits = VideoLimits()
) -> MediaHashes:
    """:func:`moderation.media.hashing.compute_hashes` in the limited child process: for
    formats whose decoders are large and complex (HEIC's HEVC, AVIF's AV1)."""
    with _run_child(path, limits, ["--image", "--max-pixels", str(max_pixels)]) as out:
        data = json.loads((out / "hashes.json").read_text())
        data["pdq_dihedral"] = tuple(data.get("pdq_dihedral", ()))
        return MediaHashes(**data)


@contextlib.contextmanager
def _run_child(
    path: str | os.PathLike[str], limits: VideoLimits, extra: list[str]
) -> Iterator[Path]:
    """Decode ``path`` in a fresh child with hard limits (forked by a decoder server, see
    :class:`_DecoderServer`); yield its output directory, or raise VideoError with the reason
    it failed."""
    with tempfile.TemporaryDirectory(prefix="decode-") as workdir:
        argv = [os.fspath(path), "--out", workdir, "--limits", json.dumps(asdict(limits)), *extra]
        returncode = _DecoderServer.run(argv, limits)
        out = Path(workdir)
        if returncode != 0:
            message = (out / "error.txt").read_text() if (out / "error.txt").exists() else ""
            if not message:
                signum = -returncode if returncode < 0 else None
                message = (
                    f"the decoder was stopped by signal {signum} (a limit, or a crash)"
                    if signum
                    else "the decoder failed"
                )
            raise VideoError(message[:500])
        yield out


def _child_env() -> dict[str, str]:
    """A minimal environment: the decoder of a hostile file gets none of the worker's secrets
    (database URL, keys, credentials). One thread: the worker's core is the budget."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


class _ServerGone(Exception):
    """The decoder server's input is closed: it had ended before the request was sent."""


class _DecoderServer:
    """A long-lived ``python -m moderation.media.video --serve`` process that forks one child
    per file.

    Why: starting a fresh interpreter and importing PyAV, numpy and Pillow costs ~0.2 s of CPU
    per file (as much as hashing a 15 s clip). The server pays it once. It never opens a file
    itself: for each request it ``fork()``s, and the child sets the same hard limits as
    before (address space, CPU time, no core file), decodes the one file and exits. So every
    file is still decoded in a fresh process that started from the same clean state, under
    the minimal environment above, in the server's session (not the worker's); a crash, a
    limit or a hostile file ends that child only, and the server reports its exit status.
    The wall-clock timeout kills the server's whole process group (server and child) and a
    new server is started for the next file; a server that stops answering is replaced too.
    Servers are recycled after ``MAX_JOBS`` files, and each process (a forked worker too) has
    its own: a server started by another process id is never used. A server exits at the end
    of its input, i.e. when its worker exits.

    Protocol, one JSON line each way: ``{"argv": [...], "limits": {...}}`` →
    ``{"returncode": n, "cpu": seconds}`` (``returncode`` negative: the signal that ended the
    child; ``cpu``: the child's user + system time, from ``wait4``).
    """

    MAX_JOBS = 500
    _idle: ClassVar[list[_DecoderServer]] = []
    _lock: ClassVar[threading.Lock] = threading.Lock()
    last_cpu_seconds: ClassVar[float] = 0.0

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moderation.media.video", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_child_env(),
            start_new_session=True,  # a signal to the worker's process group skips it
        )
        self.owner = os.getpid()
        self.jobs = 0

    @classmethod
    def run(cls, argv: list[str], limits: VideoLimits) -> int:
        """Run the child's ``argv`` on a server (an idle one, or a new one); its exit code."""
        with cls._lock:
            if any(idle.owner != os.getpid() for idle in cls._idle):
                cls._idle = []  # a forked process: those are the parent's, left alone
            server = cls._idle.pop() if cls._idle else None
        if server is not None and server.process.poll() is not None:
            server.kill()  # it died while idle
            server = None
        if server is None:
            server = cls()
        try:
            try:
                returncode, cpu = server._request(argv, limits)
            except _ServerGone:  # it ended while idle: the file was never sent, so resend
                server.kill()
                server = cls()
                returncode, cpu = server._request(argv, limits)
        except _ServerGone:
            server.kill()
            raise VideoError("the decoder process could not be started") from None
        except BaseException:
            server.kill()
            raise
        cls.last_cpu_seconds = cpu
        server.jobs += 1
        if server.jobs >= cls.MAX_JOBS:
            server.close()
        else:
            with cls._lock:
                cls._idle.append(server)
        return returncode

    def _request(self, argv: list[str], limits: VideoLimits) -> tuple[int, float]:
        assert self.process.stdin is not None and self.process.stdout is not None
        request = json.dumps({"argv": argv, "limits": asdict(limits)}).encode() + b"\n"
        try:
            self.process.stdin.write(request)
            self.process.stdin.flush()
        except OSError:
            raise _ServerGone from None
        deadline = time.monotonic() + limits.timeout_seconds
        fd, reply = self.process.stdout.fileno(), b""
        while not reply.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise VideoError(
                    f"decoding took longer than {limits.timeout_seconds:.0f} s and was stopped"
                )
            chunk = os.read(fd, 4096)
            if not chunk:
                raise VideoError("the decoder process stopped unexpectedly")
            reply += chunk
        data = json.loads(reply)
        return int(data["returncode"]), float(data["cpu"])

    def kill(self) -> None:
        """End the server and any child it is running (their own process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Stop the server: at the end of its input it exits."""
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        if self.owner == os.getpid():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)

    @classmethod
    def pid(cls) -> int | None:
        """The idle server's process id (the benchmark reads its children's CPU time)."""
        with cls._lock:
            return cls._idle[-1].process.pid if cls._idle else None

    @classmethod
    def close_all(cls) -> None:
        with cls._lock:
            servers, cls._idle = cls._idle, []
        for server in servers:
            if server.owner == os.getpid():
                server.close()


def _serve() -> int:  # pragma: no cover - runs in the decoder server
    """The decoder server's loop (see :class:`_DecoderServer`): the imports happen once, here;
    each request is decoded by a forked child, never by this process."""
    import av  # noqa: F401 — loaded once, shared copy-on-write by every child

    register_formats()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        request = json.loads(line)
        limits = VideoLimits(**request["limits"])
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # The protocol pipes are the server's: the child reads and writes neither.
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                _limit_child(limits)
                code = _child_main(request["argv"])
            except MemoryError:
                code = 3
            except BaseException:  # noqa: BLE001 — any failure is this child's exit status
                code = 1
            finally:
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        reply = {
            "returncode": os.waitstatus_to_exitcode(status),
            "cpu": usage.ru_utime + usage.ru_stime,
        }
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()
    return 0


def _child_main(argv: list[str]) -> int:  # pragma: no cover - runs in the child
    import argparse

    parser = argparse.ArgumentParser(prog="python -m moderation.media.video")
    parser.add_argument("path")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds-per-hash", type=float, default=1.0)
    parser.add_argument("--limits", default="{}")
    parser.add_argument("--animated", action="store_true")
    parser.add_argument("--image", action="store_true")
    parser.add_argument("--max-pixels", type=int, default=50_000_000)
    args = parser.parse_args(argv)
    limits = VideoLimits(**json.loads(args.limits))
    out = Path(args.out)
    if args.image:
        try:
            hashes = compute_hashes(args.path, max_pixels=args.max_pixels)
        except HashingError as exc:
            (out / "error.txt").write_text(str(exc))
            return 2
        except MemoryError:
            (out / "error.txt").write_text("the decoder ran out of its memory limit")
            return 3
        (out / "hashes.json").write_text(json.dumps(hashes.as_dict()))
        return 0
    try:
        if args.animated:
            result = hash_animation(
                args.path, seconds_per_hash=args.seconds_per_hash, limits=limits
            )
        else:
            result = hash_video(args.path, seconds_per_hash=args.seconds_per_hash, limits=limits)
    except VideoError as exc:
        (out / "error.txt").write_text(str(exc))
        return 2
    except MemoryError:
        (out / "error.txt").write_text("the decoder ran out of its memory limit")
        return 3
    for number, jpeg in result.thumbnails.items():
        (out / f"{number}.jpg").write_bytes(jpeg)
    (out / "hashes.json").write_text(json.dumps(result.as_json()))
    return 0


def iter_frames_json(result: VideoHashes) -> Iterator[dict[str, Any]]:
    for frame in result.frames:
        yield asdict(frame)


if __name__ == "__main__":  # pragma: no cover - the decoder server, or a one-off child
    sys.exit(_serve() if sys.argv[1:] == ["--serve"] else _child_main(sys.argv[1:]))
