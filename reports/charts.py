"""Server-rendered SVG bar charts: no JavaScript library, no CDN, readable without colour.

Imports nothing from the project: pages call it with plain (label, value) pairs.

A chart is a <figure>: its title as the caption, the bars as an SVG that fills the width of
its container, and the same numbers as a table under a "Show the numbers" disclosure. The
SVG has no viewBox on purpose: its bars are placed in percentages of its width and its text
keeps its real size, so the chart fits a phone-sized card without the 12px labels shrinking
to an unreadable 6px (a viewBox would scale the text with the bars). Each label sits on its
own line above its bar, so long labels never crowd the bars on a narrow screen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

LABEL_CHARS = 40  # the SVG label is cut here; the table below has the whole label
LABEL_LINE = 16  # px: one line of 12px text above each bar
BAR_SPAN = 78.0  # % of the width the longest bar takes; the rest holds its value


def _number(value: float) -> str:
    return f"{value:g}"


def bar_chart(
    data: Sequence[tuple[str, float | int]], *, title: str, bar_height: int = 18
) -> SafeString:
    """Horizontal bars with their values written out, captioned, with a data table.

    1. Keep the numeric rows (a `None` or text value has no bar to draw).
    2. Give each bar a width in % of the widest value, so the SVG scales with its card.
    3. Write the title once, as the figure's caption: it names the SVG (role=img,
       aria-labelledby) and the table (its caption), so screen readers hear the title and
       can then read every number in the table.
    """
    rows = [(str(label), float(value)) for label, value in data if isinstance(value, int | float)]
    peak = max((v for _, v in rows), default=0) or 1
    row_h = LABEL_LINE + bar_height + 10
    height = max(1, len(rows)) * row_h + 4
    key = hashlib.sha256(f"{title}|{rows}".encode()).hexdigest()[:10]
    caption_id = f"chart-{key}"
    labelled_by = caption_id if rows else f"{caption_id} {caption_id}-none"
    parts = [
        '<figure class="chart-figure">',
        f'<figcaption class="chart-title" id="{caption_id}">{escape(title)}</figcaption>',
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'aria-labelledby="{labelled_by}" width="100%" height="{height}" focusable="false">',
    ]
    if not rows:
        parts.append(
            f'<text id="{caption_id}-none" x="0" y="16" font-size="12">'
            "No data in this period.</text></svg></figure>"
        )
        return mark_safe("".join(parts))  # noqa: S308 — every interpolated string is escaped
    for i, (label, value) in enumerate(rows):
        top = i * row_h
        pct = BAR_SPAN * value / peak
        short = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
        parts.append(f'<text x="0" y="{top + 12}" font-size="12">{escape(short)}</text>')
        parts.append(
            f'<rect x="0" y="{top + LABEL_LINE}" width="{max(pct, 0.3):.2f}%" '
            f'height="{bar_height}" fill="#1d4e89"></rect>'
        )
        parts.append(
            f'<text x="{pct:.2f}%" dx="6" y="{top + LABEL_LINE + bar_height - 5}" '
            f'font-size="12" font-weight="700">{_number(value)}</text>'
        )
    parts.append("</svg>")
    parts.append(
        '<details class="chart-data"><summary>Show the numbers'
        f'<span class="visually-hidden">: {escape(title)}</span></summary>'
        f"<table><caption>{escape(title)}</caption>"
        '<thead><tr><th scope="col">Label</th><th scope="col">Value</th></tr></thead><tbody>'
    )
    parts += [
        f'<tr><th scope="row">{escape(label)}</th><td>{_number(value)}</td></tr>'
        for label, value in rows
    ]
    parts.append("</tbody></table></details></figure>")
    return mark_safe("".join(parts))  # noqa: S308 — every interpolated string is escaped
