from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import SystemActor
from principles.models import PROVENANCE_SHORT_LABELS
from principles.registry import RegistryError
from principles.services import registry_install

ACTOR = SystemActor("manage.py load_principles")


class Command(BaseCommand):
    help = (
        "Install a principles registry file (format 1 or 2, like principles/data/"
        "registry_v2.json), e.g. a version whose wording was verified against the published "
        "Interim Code. The whole file is validated first; a malformed file changes nothing. "
        "The install is audited (principles.registry_installed) with the file's SHA-256."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the registry JSON file")

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            result = registry_install(path=file, actor=ACTOR)
        except RegistryError as exc:
            raise CommandError(f"Registry not installed: {exc}") from None
        self.stdout.write(
            f"Installed principles registry version {result.version} "
            f"(was {result.previous_version or 'none'}; sha256 {result.sha256})."
        )
        for number, provenance in result.provenance.items():
            self.stdout.write(f"  {number:>2}. {PROVENANCE_SHORT_LABELS[provenance]}")
