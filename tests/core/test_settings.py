"""Settings parse the environment strictly: malformed values stop start-up, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "DEBUG",
            "SECRET_KEY",
            "CELERY_BROKER_URL",
            "CELERY_TASK_ALWAYS_EAGER",
        }
    }
    clean.update({"SAFEGUARD_VAR_DIR": str(ROOT / "var" / "test-settings")})
    clean.update(env)
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','config.settings');"
        "from django.conf import settings; print(settings.DATABASES['default']['ENGINE']);"
        "print(settings.CELERY_TASK_ALWAYS_EAGER)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


class SettingsTests:
    def test_the_embedded_default_is_sqlite_with_eager_tasks(self) -> None:
        result = _load_settings({"DEBUG": "true"})
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["django.db.backends.sqlite3", "True"]

    def test_database_and_redis_urls_select_postgres_and_a_real_broker(self) -> None:
        result = _load_settings(
            {
                "DEBUG": "true",
                "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
                "REDIS_URL": "redis://127.0.0.1:6379/0",
            }
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["django.db.backends.postgresql", "False"]

    def test_it_requires_a_secret_key_when_debug_is_off(self) -> None:
        result = _load_settings({"DEBUG": "false"})
        assert result.returncode != 0
        assert "SECRET_KEY is required" in result.stderr

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("DEBUG", "maybe"),
            ("SAFEGUARD_MAX_UPLOAD_BYTES", "fifty"),
            ("SAFEGUARD_LEASE_SECONDS", "5"),
            ("DATABASE_URL", "mysql://nope"),
            ("REDIS_URL", "http://not-redis"),
            ("LOG_LEVEL", "LOUD"),
            # A revoked token must stop working on the HMA lookup fast path within seconds.
            ("SAFEGUARD_TOKEN_CACHE_SECONDS", "3600"),
            ("SAFEGUARD_TOKEN_CACHE_SECONDS", "-1"),
            ("SAFEGUARD_TRUSTED_PROXIES", "10.0.0.0/8,gateway"),
        ],
    )
    def test_a_malformed_value_fails_loudly_naming_the_variable(
        self, name: str, value: str
    ) -> None:
        env = {"DEBUG": "true", name: value} if name != "DEBUG" else {name: value}
        result = _load_settings(env)
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert name in result.stderr
