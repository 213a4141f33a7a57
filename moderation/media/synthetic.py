"""Deterministic synthetic test images: gradients, shapes and noise, as PIL images or file bytes.

Safeguard's tests, demo data and benchmarks never use real media (and never real abuse material or
real hash lists): every image they need is drawn here by code, reproducibly from an integer seed.
The same seed, size and options always give the same pixels, so a test may pin hash values of a
generated image.

The images are meant to look a little like photographs to a perceptual hash: smooth colour
gradients, solid shapes with hard edges, sensor-like noise and sometimes blur. Four styles are
mixed by seed (``STYLES``); ``style=`` picks one explicitly.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "STYLES",
    "encode",
    "synthetic_image",
    "synthetic_jpeg",
    "synthetic_png",
    "synthetic_video_frames",
    "write_synthetic_gif",
    "write_synthetic_set",
    "write_synthetic_video",
]

# "mixed": gradient + noise + many shapes (the common case); "gradient": smooth, few shapes;
# "shapes": flat background with large shapes; "textured": stripes/checks + noise, i.e. a lot of
# high-frequency energy, the hardest case for hashes computed on downscaled pixels.
STYLES: tuple[str, ...] = ("mixed", "gradient", "shapes", "textured")


def _gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth RGB gradient (float32, 0..255) with a random direction and hue offsets."""
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    a, b, c = (float(v) for v in rng.uniform(-1.0, 1.0, 3))
    channels = []
    for k in range(3):
        phase = (a * xx + b * yy + c + k * float(rng.uniform(0.1, 0.5))) % 1.0
        # A triangle wave instead of a sawtooth: no hard wrap-around edge inside the gradient.
        channels.append(np.abs(phase * 2.0 - 1.0))
    return np.stack(channels, axis=-1) * np.float32(255.0)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Stripes or a checkerboard at a random period and angle (float32, 0..255, 3 channels)."""
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    period = float(rng.uniform(6.0, 60.0))
    angle = float(rng.uniform(0.0, np.pi))
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    if rng.random() < 0.5:
        pattern = (np.floor(u) % 2).astype(np.float32)
    else:
        v = (-xx * np.sin(angle) + yy * np.cos(angle)) / period
        pattern = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    lo, hi = sorted(rng.uniform(0, 255, 2))
    grey = lo + (hi - lo) * pattern
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    return grey[..., None] * tint[None, None, :]


def synthetic_image(
    seed: int,
    width: int = 1024,
    height: int = 768,
    *,
    style: str | None = None,
) -> Image.Image:
    """Return a deterministic RGB image drawn from ``seed``.

    Steps:
    1. Pick the style from the seed (unless given) and seed both RNGs from ``seed`` only.
    2. Paint the background: a gradient, a flat colour or a texture depending on the style.
    3. Add Gaussian noise of a random strength (like sensor noise or JPEG-unfriendly grain).
    4. Draw random rectangles, ellipses, polygons and thick lines in random colours.
    5. Sometimes blur the result slightly (out-of-focus photographs).
    """
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)  # stdlib RNG for drawing calls: cheaper than numpy scalars
    if style is None:
        style = STYLES[prng.randrange(len(STYLES))]
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")

    if style == "shapes":
        base = np.empty((height, width, 3), dtype=np.float32)
        base[...] = rng.uniform(0, 255, 3).astype(np.float32)
    elif style == "textured":
        base = _texture(rng, width, height) * 0.7 + _gradient(rng, width, height) * 0.3
    else:
        base = _gradient(rng, width, height)

    sigma = {
        "mixed": (2.0, 25.0),
        "gradient": (1.0, 8.0),
        "shapes": (0.0, 6.0),
        "textured": (2.0, 15.0),
    }[style]
    strength = float(rng.uniform(*sigma))
    if strength > 0.5:
        base += rng.standard_normal(base.shape, dtype=np.float32) * np.float32(strength)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(image)
    n_shapes = {"mixed": (5, 40), "gradient": (0, 4), "shapes": (3, 12), "textured": (0, 6)}[style]
    # Shape sizes scale with the image so small test images still get visible structure.
    max_w, max_h = max(2, width * 2 // 5), max(2, height * 2 // 5)
    for _ in range(prng.randint(*n_shapes)):
        x0, y0 = prng.randrange(width), prng.randrange(height)
        x1 = x0 + prng.randint(1, max_w)
        y1 = y0 + prng.randint(1, max_h)
        colour = (prng.randrange(256), prng.randrange(256), prng.randrange(256))
        kind = prng.randrange(4)
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 2:
            points = [(prng.randrange(x0, x1 + 1), prng.randrange(y0, y1 + 1)) for _ in range(5)]
            draw.polygon(points, fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=prng.randint(1, 12))

    if prng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(prng.uniform(0.8, 2.5)))
    return image


def encode(
    image: Image.Image,
    fmt: str,
    *,
    quality: int = 90,
    exif: Image.Exif | Mapping[int, object] | bytes | None = None,
) -> bytes:
    """Encode ``image`` as ``fmt`` ("JPEG", "PNG", "GIF", "WEBP") and return the bytes.

    ``exif`` may be a :class:`PIL.Image.Exif`, a ``{tag_id: value}`` mapping or raw EXIF bytes.
    """
    fmt = fmt.upper()
    params: dict[str, object] = {}
    if fmt == "JPEG":
        # 4:2:0 chroma subsampling is what cameras and phones write.
        params.update(quality=quality, subsampling=2)
    elif fmt == "WEBP":
        params.update(quality=quality)
    elif fmt == "PNG":
        # Default zlib level: optimize=True would make generation slow without changing pixels.
        params.update(optimize=False)
    if exif is not None:
        if isinstance(exif, Mapping) and not isinstance(exif, Image.Exif):
            built = Image.Exif()
            for tag, value in exif.items():
                built[tag] = value
            exif = built
        params["exif"] = exif.tobytes() if isinstance(exif, Image.Exif) else exif
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def synthetic_jpeg(
    seed: int,
    width: int = 1024,
    height: int = 768,
    *,
    quality: int = 90,
    style: str | None = None,
    exif: Image.Exif | Mapping[int, object] | bytes | None = None,
) -> bytes:
    """JPEG bytes of :func:`synthetic_image` (baseline, 4:2:0, ``quality``)."""
    return encode(
        synthetic_image(seed, width, height, style=style), "JPEG", quality=quality, exif=exif
    )


def synthetic_png(
    seed: int,
    width: int = 1024,
    height: int = 768,
    *,
    style: str | None = None,
) -> bytes:
    """PNG bytes (RGB, 8 bit) of :func:`synthetic_image`."""
    return encode(synthetic_image(seed, width, height, style=style), "PNG")


def write_synthetic_set(
    directory: str | Path,
    n: int,
    *,
    seed: int = 0,
    width: int = 1024,
    height: int = 768,
    formats: Sequence[str] = ("JPEG", "PNG"),
    quality: int = 90,
) -> list[Path]:
    """Write ``n`` images per format into ``directory`` and return their paths.

    Image ``i`` of every format is drawn from seed ``seed + i``, so the JPEG and the PNG of one
    index show the same picture. Files are named ``synthetic-<seed>.<ext>``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    extensions = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
    paths: list[Path] = []
    for fmt in formats:
        fmt_upper = fmt.upper()
        for i in range(n):
            image = synthetic_image(seed + i, width, height)
            path = directory / f"synthetic-{seed + i:06d}.{extensions[fmt_upper]}"
            path.write_bytes(encode(image, fmt_upper, quality=quality))
            paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Videos


def synthetic_video_frames(
    seed: int, *, seconds: float, fps: int, width: int, height: int, scene_seconds: float = 3.0
) -> list[np.ndarray]:
    """RGB frames (uint8) of a generated video: a scene is a synthetic image panning slowly,
    with a moving shape; scenes change every ``scene_seconds``. Resolution-independent: the same
    seed at another size shows the same pictures, as a re-encode would."""
    frames = []
    scenes: dict[int, np.ndarray] = {}
    for n in range(int(seconds * fps)):
        t = n / fps
        scene = int(t // scene_seconds)
        if scene not in scenes:
            big = synthetic_image(
                seed * 1000 + scene, width=320 + 64, height=240 + 48, style="mixed"
            )
            scenes[scene] = np.asarray(big.convert("RGB"))
        picture = scenes[scene]
        shift = int((t % scene_seconds) * 8)  # a slow pan: 8 px per second of the scene
        crop = Image.fromarray(picture[shift % 48 : shift % 48 + 240, shift : shift + 320])
        frame = np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR)).copy()
        # A small moving square, so consecutive frames differ as in real footage.
        size = max(4, width // 16)
        x = int((t * 37 * width / 320) % max(1, width - size))
        y = int((t * 23 * height / 240) % max(1, height - size))
        frame[y : y + size, x : x + size] = (255, 255, 255)
        frames.append(frame)
    return frames


def write_synthetic_video(
    path: str | Path,
    seed: int,
    *,
    seconds: float = 6.0,
    fps: int = 15,
    width: int = 320,
    height: int = 240,
    codec: str = "libx264",
    crf: int = 23,
    logo: bool = False,
    bar: int = 0,
    container: str | None = None,
) -> Path:
    """Encode a generated video (see :func:`synthetic_video_frames`) with PyAV.

    ``logo`` burns a corner logo in, ``bar`` adds black bars of that many pixels above and below
    (a letterboxed copy), ``crf``/``width``/``height`` re-encode at another quality or size:
    the transformations a re-upload goes through. ``codec`` is ``libx264`` (with B-frames),
    ``libvpx-vp9`` or another encoder in PyAV's FFmpeg.
    """
    import av

    path = Path(path)
    frames = synthetic_video_frames(
        seed, seconds=seconds, fps=fps, width=width, height=height - 2 * bar
    )
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": str(crf), "bf": "3"}
        elif codec == "libvpx-vp9":
            stream.options = {
                "crf": str(crf + 10),
                "b": "0",
                "deadline": "realtime",
                "cpu-used": "8",
            }
        for rgb in frames:
            if bar:
                rgb = np.pad(rgb, ((bar, bar), (0, 0), (0, 0)))
            if logo:
                rgb = rgb.copy()
                side = max(8, width // 14)
                rgb[8 : 8 + side // 2, 8 : 8 + side] = (20, 200, 80)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def write_synthetic_gif(path: str | Path, seed: int, *, seconds: float = 3.0, fps: int = 5) -> Path:
    """An animated GIF of a generated video (see :func:`synthetic_video_frames`)."""
    path = Path(path)
    frames = synthetic_video_frames(seed, seconds=seconds, fps=fps, width=160, height=120)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path
