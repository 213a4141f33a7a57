"""Single sign-on settings: off by default, strict when configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.roles import ROLE_NAMES

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "SAFEGUARD_OIDC_ISSUER": "https://id.example.org/realms/safety",
    "SAFEGUARD_OIDC_CLIENT_ID": "safeguard",
    "SAFEGUARD_OIDC_CLIENT_SECRET": "s3cret",
    "SAFEGUARD_OIDC_ROLE_MAP": "sg-mods=Moderator,sg-leads=Safety lead,sg-admins=Admin",
}
SHOW = (
    "import json, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','config.settings');"
    "from django.conf import settings as s; print(json.dumps({"
    "'enabled': s.SAFEGUARD_OIDC_ENABLED, 'backends': s.AUTHENTICATION_BACKENDS,"
    "'roles': s.SAFEGUARD_OIDC_ROLE_MAP, 'form_action': "
    "s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action']}))"
)


def _load(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SAFEGUARD_OIDC_", "SAFEGUARD_LOCAL_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    clean.update(
        {
            "DEBUG": "true",
            "SAFEGUARD_VAR_DIR": str(ROOT / "var" / "test-settings"),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


class SsoSettingsTests:
    def test_single_sign_on_is_off_by_default_and_changes_nothing(self) -> None:
        result = _load({})
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout.splitlines()[-1])
        assert shown["enabled"] is False
        assert "sso.backends.OidcBackend" not in shown["backends"]
        assert "django.contrib.auth.backends.ModelBackend" in shown["backends"]
        assert shown["form_action"] == ["'self'"]

    def test_a_complete_configuration_enables_it(self) -> None:
        result = _load(GOOD)
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout.splitlines()[-1])
        assert shown["enabled"] is True
        assert "sso.backends.OidcBackend" in shown["backends"]
        assert shown["roles"] == {
            "sg-mods": "Moderator",
            "sg-leads": "Safety lead",
            "sg-admins": "Admin",
        }
        # The logout form is redirected to the provider: CSP must allow it.
        assert "https://id.example.org" in shown["form_action"]

    def test_password_login_can_be_turned_off_with_sso(self) -> None:
        result = _load({**GOOD, "SAFEGUARD_LOCAL_PASSWORD_LOGIN": "false"})
        assert result.returncode == 0, result.stderr
        backends = json.loads(result.stdout.splitlines()[-1])["backends"]
        assert "django.contrib.auth.backends.ModelBackend" not in backends

    def test_the_role_names_are_the_consoles(self) -> None:
        settings_text = (ROOT / "config" / "settings.py").read_text()
        assert '("Moderator", "Safety lead", "Admin")' in settings_text
        assert ROLE_NAMES == ("Moderator", "Safety lead", "Admin")

    @pytest.mark.parametrize(
        ("env", "named"),
        [
            ({"SAFEGUARD_LOCAL_PASSWORD_LOGIN": "false"}, "SAFEGUARD_LOCAL_PASSWORD_LOGIN"),
            ({**GOOD, "SAFEGUARD_OIDC_CLIENT_SECRET": ""}, "SAFEGUARD_OIDC_CLIENT_SECRET"),
            ({**GOOD, "SAFEGUARD_OIDC_ROLE_MAP": ""}, "SAFEGUARD_OIDC_ROLE_MAP"),
            ({**GOOD, "SAFEGUARD_OIDC_ROLE_MAP": "sg=Superuser"}, "SAFEGUARD_OIDC_ROLE_MAP"),
            ({**GOOD, "SAFEGUARD_OIDC_ROLE_MAP": "Moderator"}, "SAFEGUARD_OIDC_ROLE_MAP"),
            (
                {**GOOD, "SAFEGUARD_OIDC_ISSUER": "http://id.example.org/realms/x"},
                "SAFEGUARD_OIDC_ISSUER",
            ),
            ({**GOOD, "SAFEGUARD_OIDC_ISSUER": "ftp://id.example.org"}, "SAFEGUARD_OIDC_ISSUER"),
            (
                {**GOOD, "SAFEGUARD_OIDC_SIGNING_ALGORITHMS": "none"},
                "SAFEGUARD_OIDC_SIGNING_ALGORITHMS",
            ),
            (
                {**GOOD, "SAFEGUARD_OIDC_SIGNING_ALGORITHMS": "RS256,HS256"},
                "SAFEGUARD_OIDC_SIGNING_ALGORITHMS",
            ),
            ({**GOOD, "SAFEGUARD_OIDC_DISCOVERY": "false"}, "SAFEGUARD_OIDC_DISCOVERY"),
            (
                {**GOOD, "SAFEGUARD_OIDC_TOKEN_AUTH_METHOD": "private_key_jwt"},
                "SAFEGUARD_OIDC_TOKEN_AUTH_METHOD",
            ),
            ({**GOOD, "SAFEGUARD_OIDC_TIMEOUT_SECONDS": "0"}, "SAFEGUARD_OIDC_TIMEOUT_SECONDS"),
        ],
    )
    def test_a_bad_configuration_stops_start_up_naming_the_variable(
        self, env: dict[str, str], named: str
    ) -> None:
        result = _load(env)
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert named in result.stderr
