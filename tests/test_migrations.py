from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
class MigrationTests:
    def test_the_models_and_the_migrations_agree(self) -> None:
        out = StringIO()
        # --check exits non-zero (SystemExit) when a model change has no migration.
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
        assert "No changes detected" in out.getvalue()
