"""The video section of the case page, laid out for the template: metadata, where the matches
are on the timeline, and the contact sheet of hidden frames. Presentation only: reads what the
hashing stored, writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from moderation.models import Item, Match, Media


def clock(seconds: float) -> str:
    """A time in a video as a player shows it: m:ss (0:07, 12:30)."""
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _span_label(start: float, end: float) -> str:
    first, last = clock(start), clock(end)
    return first if first == last else f"{first}\u2013{last}"


@dataclass(frozen=True)
class SheetFrame:
    """A frame on the contact sheet: a placeholder with its time until it is revealed."""

    pk: int
    timestamp: float
    time: str


@dataclass(frozen=True)
class Span:
    """One matched segment of a video: its label, where it sits on the timeline (CSS
    percentages of the duration) and the contact-sheet frame that shows it best."""

    list_name: str
    label: str
    left: str
    width: str
    target: SheetFrame | None


@dataclass(frozen=True)
class VideoMatch:
    match: Match
    spans: list[Span]
    shares: str


@dataclass(frozen=True)
class VideoReview:
    """What the case page shows of a video or animated image before anything is revealed:
    its metadata, where the matches are, and a contact sheet of hidden frames."""

    duration: str
    hashed_frames: int
    sheet: list[SheetFrame]
    matches: list[VideoMatch]
    spans: list[Span] = field(default_factory=list)
    axis: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ItemReview:
    item: Item
    video: VideoReview | None


def _nearest(sheet: list[SheetFrame], start: float, end: float) -> SheetFrame | None:
    """The first contact-sheet frame inside [start, end], else the one nearest to start."""
    inside = [f for f in sheet if start <= f.timestamp <= end]
    if inside:
        return inside[0]
    return min(sheet, key=lambda f: abs(f.timestamp - start), default=None)


def timeline_position(start: float, end: float, duration: float) -> tuple[str, str]:
    """Left and width of [start, end) on a bar of `duration` seconds, as CSS percentages: at
    least 0.75% wide, so that a single matched frame shows, and never past the bar's end."""
    if duration <= 0:
        return "0.00%", "100.00%"
    width = min(100.0, max(0.75, 100 * (min(end, duration) - start) / duration))
    left = max(0.0, min(100 * start / duration, 100.0 - width))
    return f"{left:.2f}%", f"{width:.2f}%"


def video_review(media: Media) -> VideoReview:
    """The video section of the case page, laid out here so the template only prints.

    1. Hashed frames are read once (number, timestamp, whether a thumbnail exists); the
       sampling step is the gap between the first two (one second by default).
    2. Each match segment covers its matched samples: from its first timestamp to one step
       past its last, clipped to the duration, so a single matched frame is still visible.
    3. Positions are percentages of the duration, formatted here (not by the template's
       localised number filters) because they go into CSS.
    """
    rows = list(media.frames.order_by("frame").values_list("pk", "frame", "timestamp", "thumbnail"))
    sheet = [SheetFrame(pk, ts, clock(ts)) for pk, _, ts, thumb in rows if thumb]
    step = rows[1][2] - rows[0][2] if len(rows) > 1 and rows[1][2] > rows[0][2] else 1.0
    duration = media.duration or (rows[-1][2] + step if rows else 0.0)
    matches, spans = [], []
    for match in media.matches.all():
        match_spans = []
        for segment in match.segments or []:
            start = float(segment["query_start"])
            end = float(segment["query_end"])
            label = _span_label(start, end)
            if segment.get("listed_start") is not None and segment.get("listed_end") is not None:
                label += f" (listed {_span_label(segment['listed_start'], segment['listed_end'])})"
            left, width = timeline_position(start, end + step, duration)
            match_spans.append(
                Span(match.hash_list.name, label, left, width, _nearest(sheet, start, end))
            )
        shares = ""
        if match.listed_percent is not None and match.query_percent is not None:
            shares = f"listed {match.listed_percent:.0f}% \u00b7 query {match.query_percent:.0f}%"
        matches.append(VideoMatch(match, match_spans, shares))
        spans += match_spans
    axis = [clock(0), clock(duration / 2), clock(duration)]
    return VideoReview(clock(duration), len(rows), sheet, matches, spans, axis)
