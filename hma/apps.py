"""The HMA app: Meta's Hasher-Matcher-Actioner (OpenMediaMatch) routes, spoken by Safeguard."""

from django.apps import AppConfig


class HmaConfig(AppConfig):
    name = "hma"
    verbose_name = "HMA-compatible API"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system check of HMA_SIGNAL_TYPES)
