"""`{{ value|visible_controls }}`: show text from outside with its control characters made
visible (core.text), so a bidi override cannot disguise a file name or a message."""

from __future__ import annotations

from typing import Any

from django import template

from core.text import visible_controls as _visible_controls

register = template.Library()


@register.filter
def visible_controls(value: Any) -> str:
    return _visible_controls("" if value is None else str(value))
