"""Text from outside (file names, usernames, messages) shown safely.

Unicode bidirectional controls reorder what a reader sees: U+202E makes "gpj.exe" display as
"exe.jpg". The stored value is evidence and stays exactly as received; what is *shown* (pages,
PDFs) replaces each control character with a visible marker such as ⟦U+202E⟧.
Imports nothing from the project.
"""

from __future__ import annotations

import re

# Bidi embeddings/overrides/isolates and marks, the Arabic letter mark, and C0/C1 controls
# other than tab and newline.
_CONTROLS = re.compile(
    "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u0000-\u0008\u000b-\u001f\u007f-\u009f]"
)


def visible_controls(text: str, *, brackets: str = "⟦⟧") -> str:
    """Each control character as a visible marker; `brackets="[]"` for Latin-1 outputs."""
    opening, closing = brackets[0], brackets[1]
    return _CONTROLS.sub(lambda m: f"{opening}U+{ord(m.group()):04X}{closing}", text)
