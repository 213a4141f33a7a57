"""Login security: two-factor authentication, lockout, headers, deploy checks, API limits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.enrolment import enrolment_link_issue
from core.evidence_crypto import master_key_line
from core.models import ApiToken
from core.services import api_token_create, api_token_revoke
from tests.conftest import PASSWORD, client_for, verified_device

ROOT = Path(__file__).resolve().parents[2]


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def _login(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post("/login/", {"username": username, "password": password})


@pytest.mark.django_db
class TwoFactorTests:
    def test_a_lead_must_enrol_then_verify_before_reaching_the_console(self, lead: Any) -> None:
        client = Client()
        _login(client, "lead1")
        response = client.get("/escalations/")
        assert response.status_code == 302 and "/account/2fa/" in response["Location"]
        # A password alone binds no authenticator to a lead: an admin's enrolment link does.
        refused = client.get("/account/2fa/?next=/escalations/")
        assert refused.status_code == 403 and "enrolment link" in refused.content.decode()
        assert not TOTPDevice.objects.filter(user=lead).exists()
        _, token = enrolment_link_issue(actor=SystemActor("test admin"), person=lead)
        client.post(f"/account/2fa/enrol/{token}")
        page = client.get("/account/2fa/?next=/escalations/").content.decode()
        assert "Set up two-factor authentication" in page and "<svg" in page
        assert 'aria-label="Main"' not in page  # no console nav before the second factor
        device = TOTPDevice.objects.get(user=lead, confirmed=False)
        assert "did not match" in client.post("/account/2fa/", {"token": "000000"}).content.decode()
        # django-otp throttles guesses: one failure locks codes out for a second, even a valid
        # one. The page says that, rather than "did not match".
        locked = client.post("/account/2fa/", {"token": _code(device)}).content.decode()
        assert "Too many wrong codes in a row" in locked and "did not match" not in locked
        time.sleep(1.1)
        response = client.post("/account/2fa/", {"token": _code(device), "next": "/escalations/"})
        codes = re.findall(r"<li>([0-9a-f]{10})</li>", response.content.decode())
        assert len(codes) == 10
        assert client.get("/escalations/").status_code == 200

        second = Client()  # a new session must verify again; a recovery code works once
        _login(second, "lead1")
        assert second.get("/escalations/").status_code == 302
        before = second.session.session_key
        response = second.post("/account/2fa/", {"token": codes[0], "next": "/escalations/"})
        assert response.status_code == 302 and response["Location"] == "/escalations/"
        # The session id is rotated at the second factor: the one seen before it is dead.
        assert second.session.session_key != before
        stale = Client()
        stale.cookies["sessionid"] = before
        assert stale.get("/escalations/").status_code == 302
        third = Client()
        _login(third, "lead1")
        third.post("/account/2fa/", {"token": codes[0]})
        assert third.get("/escalations/").status_code == 302  # the code was used up

    def test_a_valid_code_during_the_lock_out_is_explained_not_called_wrong(
        self, lead: Any
    ) -> None:
        device = verified_device(lead)
        client = Client()
        _login(client, "lead1")
        assert "did not match" in client.post("/account/2fa/", {"token": "000000"}).content.decode()
        locked = client.post("/account/2fa/", {"token": _code(device)}).content.decode()
        assert "Too many wrong codes in a row" in locked and "did not match" not in locked
        time.sleep(1.1)
        assert client.post("/account/2fa/", {"token": _code(device)}).status_code == 302

    def test_moderators_need_it_only_when_configured(self, moderator: Any, settings: Any) -> None:
        settings.SAFEGUARD_2FA_MODERATORS = False
        client = Client()
        _login(client, "mod1")
        assert client.get("/queue/").status_code == 200
        settings.SAFEGUARD_2FA_MODERATORS = True
        assert client.get("/queue/").status_code == 302

    def test_an_unverified_session_gets_403_json_from_the_api_but_tokens_work(
        self, lead: Any
    ) -> None:
        client = client_for(lead, second_factor=False)
        response = client.get("/api/v1/hash-lists")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "two_factor_required"
        _, key = api_token_create(name="lead-cli", user=lead, actor=SystemActor("t"))
        token_client = APIClient()
        token_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert token_client.get("/api/v1/hash-lists").status_code == 200


@pytest.mark.django_db
class LockoutTests:
    def test_repeated_failed_logins_lock_the_account_for_that_address(
        self, moderator: Any, settings: Any
    ) -> None:
        client = Client()
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _login(client, "mod1", "wrong").status_code == 200
        assert _login(client, "mod1", "wrong").status_code == 429  # the limit is reached
        locked = _login(client, "mod1")  # even the right password is refused now
        assert locked.status_code in (403, 429)
        assert b"Too many failed logins" in locked.content
        assert "_auth_user_id" not in client.session


@pytest.mark.django_db
class HeaderTests:
    def test_pages_carry_csp_frame_and_referrer_headers(self, moderator: Any) -> None:
        response = client_for(moderator).get("/queue/")
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "object-src 'none'" in csp
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Content-Type-Options"] == "nosniff"

    def test_idle_sessions_expire(self, settings: Any) -> None:
        assert settings.SESSION_SAVE_EVERY_REQUEST is True
        assert settings.SESSION_COOKIE_AGE == 30 * 60


class DeployCheckTests:
    def test_check_deploy_is_clean_with_production_settings(self, tmp_path: Path) -> None:
        env = {
            k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
        }
        env.update(
            {
                "DEBUG": "false",
                "SECRET_KEY": "x" * 30 + uuid.uuid4().hex + "Yz!@#",
                "SITE_URL": "https://safeguard.example.org",
                "SECURE_HSTS_SECONDS": "31536000",
                "SECURE_HSTS_PRELOAD": "true",
                "SECURE_SSL_REDIRECT": "true",
                "ALLOWED_HOSTS": "safeguard.example.org",
                "SAFEGUARD_VAR_DIR": str(tmp_path),
                # Evidence master keys from a secret store (without: safeguard.W020).
                "SAFEGUARD_EVIDENCE_MASTER_KEYS": master_key_line("prod-1"),
            }
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "no issues" in result.stdout
        del env["SAFEGUARD_EVIDENCE_MASTER_KEYS"]
        warned = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert warned.returncode != 0 and "safeguard.W020" in warned.stderr


@pytest.mark.django_db
class RateLimitTests:
    def test_a_token_over_its_rate_gets_429_with_retry_after(
        self, settings: Any, platform_client: APIClient, other_platform_client: APIClient
    ) -> None:
        settings.SAFEGUARD_API_RATE = "3/min"
        settings.SAFEGUARD_THROTTLE_NAMESPACE = uuid.uuid4().hex  # fresh buckets
        statuses = [platform_client.get("/api/v1/items/999").status_code for _ in range(4)]
        assert statuses == [404, 404, 404, 429]
        limited = platform_client.get("/api/v1/items/999")
        assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
        assert limited.json()["error"]["code"] == "throttled"
        # Buckets are per token: another platform is unaffected.
        assert other_platform_client.get("/api/v1/items/999").status_code == 404

    def test_a_revoked_token_stops_working_at_once(self, platform_key: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {platform_key}")
        assert client.get("/api/v1/items/1").status_code == 404
        api_token_revoke(token=ApiToken.objects.get(name="test-platform"), actor=SystemActor("t"))
        assert client.get("/api/v1/items/1").status_code == 401
