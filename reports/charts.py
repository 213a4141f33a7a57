"""Server-rendered SVG bar charts: no JavaScript library, no CDN, readable without colour.

Imports nothing from the project: pages call it with plain (label, value) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from django.utils.safestring import SafeString, mark_safe


def bar_chart(
    data: Sequence[tuple[str, float | int]], *, title: str, width: int = 640, bar_height: int = 22
) -> SafeString:
    """Horizontal bars with their values written out (accessible: role=img + a text table)."""
    rows = [(str(label), float(value)) for label, value in data if isinstance(value, int | float)]
    label_w, gap = 190, 6
    height = max(1, len(rows)) * (bar_height + gap) + 30
    peak = max((v for _, v in rows), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<text x="0" y="16" font-size="13" font-weight="700">{escape(title)}</text>',
    ]
    if not rows:
        parts.append(
            '<text x="0" y="40" font-size="12" fill="#4d5a69">No data in this period.</text>'
        )
    for i, (label, value) in enumerate(rows):
        y = 28 + i * (bar_height + gap)
        w = int((width - label_w - 60) * value / peak)
        parts.append(
            f'<text x="0" y="{y + bar_height - 6}" font-size="12">{escape(label[:28])}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_height}" '
            f'fill="#1d4e89"><title>{escape(label)}: {value:g}</title></rect>'
        )
        parts.append(
            f'<text x="{label_w + max(w, 1) + 6}" y="{y + bar_height - 6}" '
            f'font-size="12">{value:g}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 — every interpolated string is escaped
