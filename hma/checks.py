"""System check: HMA_SIGNAL_TYPES names only signal types this API knows."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from .signal_types import SIGNAL_TYPES


@register()
def check_signal_types(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    unknown = sorted(set(settings.HMA_SIGNAL_TYPES) - set(SIGNAL_TYPES))
    if not unknown:
        return []
    return [
        Error(
            f"HMA_SIGNAL_TYPES names unknown signal types: {', '.join(unknown)}",
            hint=f"Choose among {', '.join(SIGNAL_TYPES)} (empty: all).",
            id="hma.E001",
        )
    ]
