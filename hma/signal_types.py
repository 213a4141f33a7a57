"""HMA's signal types in Safeguard's terms: which hash list algorithm each feeds, how its values
are checked, and how two values compare.

HMA names a hash by its *signal type* (python-threatexchange's ``SignalType.get_name()``);
Safeguard by its list's algorithm (``moderation.models.HashList.Algorithm``):

| signal type | hashed from | list algorithm | value |
| --- | --- | --- | --- |
| ``pdq`` | photo | pdq | 64 hex digits |
| ``video_md5`` | video | md5 | 32 hex digits |
| ``vpdq`` | video | vpdq | JSON list of ``"<pdq>,<quality>,<seconds>"`` (see below) |
| ``photo_md5`` | photo | md5 | 32 hex digits (python-threatexchange's former photo MD5) |
| ``md5`` | (lookups and banks only) | md5 | 32 hex digits |
| ``sha256``, ``sha1`` | photo, video | sha256, sha1 | 64 and 40 hex digits |
| ``phash``, ``dhash`` | photo | phash, dhash | 16 hex digits |

A vPDQ value is python-threatexchange's (extensions/vpdq, ``VpdqCompactFeature``): one string
per hashed frame. The first three are HMA's own; the others are Safeguard's extensions, so that
a lookup searches every list the intake pipeline matches (the same names the signal-file import
reads, ``moderation.services.hashlists.SIGNAL_TYPES``). ``HMA_SIGNAL_TYPES`` narrows the set.

Comparisons follow python-threatexchange: PDQ matches within 31 bits (``PdqSignal``), exact
types on equality (``SimpleSignalType``), vPDQ when either side's share of matched frames
reaches 80 % (``VideoVPDQSignal.compare_hash``, frames of quality >= 50 within 31 bits).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from moderation.matching.index import HammingIndex, hex_to_codes
from moderation.media.hashing import hamming_hex
from moderation.media.video import FrameHash
from moderation.models import HashList

from .errors import InvalidSignal, UnknownSignalType

PHOTO = "photo"
VIDEO = "video"
CONTENT_TYPES = (PHOTO, VIDEO)

# python-threatexchange's vPDQ constants (extensions/vpdq/vpdq_util.py, video_vpdq.py).
VPDQ_QUALITY_FLOOR = 50
VPDQ_DISTANCE = 31
VPDQ_MATCH_PERCENT = 80.0
# A two-hour video at one hash a second (moderation.media.video.VideoLimits.max_hashed_frames):
# a longer signal is refused rather than compared frame by frame.
VPDQ_MAX_FRAMES = 7200

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class SignalType:
    name: str
    algorithm: str
    content_types: tuple[str, ...]
    hma: bool = False  # one of HMA's own signal types

    @property
    def exact(self) -> bool:
        return self.algorithm in HashList.EXACT

    def validate(self, raw: Any) -> str:
        """The normalised value (lower-case hex, or canonical vPDQ JSON); InvalidSignal if it is
        not a value of this type."""
        if not isinstance(raw, str):
            raise InvalidSignal(f"invalid {self.name} signal: expected a string")
        if self.algorithm == HashList.Algorithm.VPDQ:
            return vpdq_dumps(self.frames(raw))
        value = raw.strip().lower()
        length = HashList.HEX_LENGTH[self.algorithm]
        if len(value) != length or not _HEX.match(value):
            raise InvalidSignal(
                f"invalid {self.name} signal: expected {length} hex digits, got {len(value)} "
                "characters"
                if len(value) != length
                else f"invalid {self.name} signal: not hexadecimal"
            )
        return value

    def frames(self, raw: str) -> list[FrameHash]:
        """A vPDQ signal's frames, numbered in order; InvalidSignal if malformed."""
        try:
            features = json.loads(raw or "[]")
        except (ValueError, RecursionError):
            raise InvalidSignal("invalid vpdq signal: not JSON") from None
        if not isinstance(features, list):
            raise InvalidSignal("invalid vpdq signal: expected a JSON list of frame features")
        if len(features) > VPDQ_MAX_FRAMES:
            raise InvalidSignal(
                f"invalid vpdq signal: {len(features)} frames, more than {VPDQ_MAX_FRAMES}"
            )
        frames = []
        for number, feature in enumerate(features):
            parts = feature.split(",") if isinstance(feature, str) else []
            try:
                pdq, quality, seconds = parts[0].strip().lower(), int(parts[1]), float(parts[2])
                valid = len(parts) == 3 and 0 <= quality <= 100 and 0 <= seconds < 1e9
            except (IndexError, ValueError):
                valid = False
            if not valid or len(pdq) != 64 or not _HEX.match(pdq):
                raise InvalidSignal(
                    f"invalid vpdq signal: feature {number} is not '<pdq hex>,<quality>,<seconds>'"
                )
            frames.append(FrameHash(number, round(seconds, 3), quality, pdq))
        if not frames:
            raise InvalidSignal("invalid vpdq signal: no frames")
        return frames

    def compare(self, left: str, right: str) -> list[Any]:
        """``[match, similarity]`` as HMA's /m/compare reports python-threatexchange's
        ``SignalComparisonResult``: ``[true, {"distance": 9}]`` for PDQ, ``[true, {}]`` for
        exact types, match percentages for vPDQ."""
        a, b = self.validate(left), self.validate(right)
        if self.exact:
            return [a == b, {}]
        if self.algorithm == HashList.Algorithm.VPDQ:
            query, compared = vpdq_percentages(self.frames(a), self.frames(b))
            return [
                max(query, compared) >= VPDQ_MATCH_PERCENT,
                {"query_match_percent": query, "compared_match_percent": compared},
            ]
        distance = hamming_hex(a, b)
        return [distance <= HashList.MAX_THRESHOLD[self.algorithm], {"distance": distance}]


SIGNAL_TYPES: dict[str, SignalType] = {
    st.name: st
    for st in (
        SignalType("pdq", HashList.Algorithm.PDQ, (PHOTO,), hma=True),
        SignalType("video_md5", HashList.Algorithm.MD5, (VIDEO,), hma=True),
        SignalType("vpdq", HashList.Algorithm.VPDQ, (VIDEO,), hma=True),
        SignalType("photo_md5", HashList.Algorithm.MD5, (PHOTO,)),
        SignalType("md5", HashList.Algorithm.MD5, ()),
        SignalType("sha256", HashList.Algorithm.SHA256, (PHOTO, VIDEO)),
        SignalType("sha1", HashList.Algorithm.SHA1, (PHOTO, VIDEO)),
        SignalType("phash", HashList.Algorithm.PHASH, (PHOTO,)),
        SignalType("dhash", HashList.Algorithm.DHASH, (PHOTO,)),
    )
}
# The name a list entry's value is reported under when nothing says how it was added.
NAME_OF_ALGORITHM = {
    "pdq": "pdq",
    "md5": "md5",
    "vpdq": "vpdq",
    "sha256": "sha256",
    "sha1": "sha1",
    "phash": "phash",
    "dhash": "dhash",
}


def enabled_signal_types() -> dict[str, SignalType]:
    """The signal types this installation speaks (``HMA_SIGNAL_TYPES``; empty means all)."""
    wanted = settings.HMA_SIGNAL_TYPES
    return {name: st for name, st in SIGNAL_TYPES.items() if not wanted or name in wanted}


def signal_type_get(name: Any) -> SignalType:
    """The enabled signal type of that name; UnknownSignalType (400) otherwise, as HMA's
    ``_validate_and_transform_signal_type``."""
    st = enabled_signal_types().get(name) if isinstance(name, str) else None
    if st is None:
        raise UnknownSignalType(f"No such signal type '{name}'")
    return st


def signal_types_for(content_type: str, names: str | None = None) -> list[SignalType]:
    """The signal types an upload of ``content_type`` is hashed to: all enabled ones, or those
    named in HMA's ``types`` parameter (comma-separated; an unknown, disabled or inapplicable
    one is refused, as HMA's ``_parse_request_signal_type``)."""
    available = {
        name: st for name, st in enabled_signal_types().items() if content_type in st.content_types
    }
    if names is None:
        return list(available.values())
    chosen = []
    for name in (part.strip() for part in names.split(",")):
        if not name:
            continue
        if name not in available:
            raise UnknownSignalType(f"signal type '{name}' doesn't exist or is disabled")
        chosen.append(available[name])
    if not chosen:
        raise UnknownSignalType("empty signal type selection")
    return chosen


def vpdq_dumps(frames: list[FrameHash]) -> str:
    """A vPDQ signal: the JSON list of ``"<pdq>,<quality>,<seconds>"`` features."""
    return json.dumps([f"{f.pdq},{f.quality},{f.timestamp:.3f}" for f in frames])


def _distinct_eligible(frames: list[FrameHash]) -> list[str]:
    return sorted({f.pdq for f in frames if f.quality >= VPDQ_QUALITY_FLOOR})


def vpdq_percentages(query: list[FrameHash], compared: list[FrameHash]) -> tuple[float, float]:
    """vPDQ's two shares (vpdq/README.md): of the query's distinct frame hashes of quality >= 50,
    the percentage within 31 bits of one of the compared video's; and the other way round."""
    left, right = _distinct_eligible(query), _distinct_eligible(compared)
    if not left or not right:
        return 0.0, 0.0
    index = HammingIndex.build(hex_to_codes(right, 256), bits=256, max_radius=VPDQ_DISTANCE)
    hits = index.search_many(hex_to_codes(left, 256), VPDQ_DISTANCE)
    matched_right = np.zeros(len(right), dtype=bool)
    matched_left = 0
    for frame_hits in hits:
        if frame_hits:
            matched_left += 1
            matched_right[[row for row, _ in frame_hits]] = True
    return (
        round(100.0 * matched_left / len(left), 3),
        round(100.0 * int(matched_right.sum()) / len(right), 3),
    )
