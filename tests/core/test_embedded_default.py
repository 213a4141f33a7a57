"""The embedded default (SQLite, in-process tasks) migrates and seeds from nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(args: list[str], var_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY"}
    }
    env.update(
        {
            "DEBUG": "true",
            "SAFEGUARD_VAR_DIR": str(var_dir),
            "SAFEGUARD_DEMO_PASSWORD": "demo-password-for-tests",
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


class EmbeddedDefaultTests:
    def test_migrations_and_seed_demo_run_on_sqlite_and_seed_is_idempotent(
        self, tmp_path: Path
    ) -> None:
        result = _manage(["migrate", "--noinput"], tmp_path)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "safeguard.sqlite3").exists()
        first = _manage(["seed_demo", "--items", "12"], tmp_path)
        assert first.returncode == 0, first.stderr
        assert "16 new items" in first.stdout  # 12, and the 3 demo videos and an animated GIF
        second = _manage(["seed_demo", "--items", "12"], tmp_path)
        assert second.returncode == 0, second.stderr
        assert "0 new items" in second.stdout
        check = _manage(
            [
                "shell",
                "-c",
                "from moderation.models import Media;"
                "print(sorted(set(Media.objects.values_list('hash_status', flat=True))))",
            ],
            tmp_path,
        )
        assert check.stdout.strip().endswith("['done']"), check.stdout + check.stderr
        assert _manage(["verify_audit"], tmp_path).returncode == 0
        assert _manage(["check", "--fail-level", "WARNING"], tmp_path).returncode == 0
        # core.sqlrows' plain SQL (intake's reads and inserts) against the ORM on SQLite: the
        # seeded items went through it; one more case row either way must read back the same.
        same = _manage(["shell", "-c", _SQLROWS_ON_SQLITE], tmp_path)
        assert same.stdout.strip().endswith("True True True True"), same.stdout + same.stderr


_SQLROWS_ON_SQLITE = """
from django.utils import timezone
from core import sqlrows
from moderation.models import Case, Item
now = timezone.now()
def make(key):
    return Case(subject_key=key, source="t", priority=2, sla_due_at=now, created_at=now,
                priority_reasons=[{"reason": "x"}])
def row(case):
    skip = ("id", "subject_key", "updated_at")
    return {f.attname: getattr(case, f.attname) for f in Case._meta.concrete_fields
            if f.attname not in skip}
[a] = sqlrows.insert(Case, [make("sqlite:a")])
[b] = Case.objects.bulk_create([make("sqlite:b")])
[sel] = sqlrows.select(Case, "t.subject_key = %s AND t.active", ["sqlite:a"])
item = Item.objects.order_by("pk").first()
[only] = sqlrows.select(Item, "t.id = %s", [item.pk], fields=("id", "external_id"))
stored_a, stored_b = Case.objects.get(pk=a.pk), Case.objects.get(pk=b.pk)
print(a.active is True, row(stored_a) == row(stored_b), row(sel) == row(stored_b),
      only.external_id == item.external_id)
"""
