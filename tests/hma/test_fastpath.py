"""hma.fastpath: token-authenticated GET lookups answered without the rest of the stack — the
same answers and headers as the DRF views, the token check reused only briefly, every refusal
left to the full stack (401/403/429/400 as before), and the rate limit shared with it."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.models import ApiToken
from core.services import api_token_create, api_token_revoke
from tests.conftest import client_for
from tests.hma.factories import add_signals, create_bank, flip, pdq

FULL_STACK = [
    m for m in django_settings.MIDDLEWARE if m != "hma.fastpath.HmaLookupFastPathMiddleware"
]
# Headers the skipped middleware and the DRF view add to an answer: the lean path adds the same.
HEADERS = (
    "Content-Type",
    "Allow",
    "Cache-Control",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "Content-Security-Policy",
)
LOOKUPS = [
    f"/m/raw_lookup?signal_type=pdq&signal={flip(pdq(1), 5)}",
    f"/m/raw_lookup?signal_type=pdq&signal={flip(pdq(1), 5)}&include_distance=true",
    f"/m/raw_lookup?signal_type=pdq&signal={pdq(9)}&include_distance=true",
    f"/m/lookup?signal_type=pdq&signal={flip(pdq(1), 3)}&notes=true",
    f"/m/lookup?signal_type=pdq&signal={pdq(1)}&banks=FAST,OTHER&bypass_coinflip=true",
]


def _token(name: str, **extra: Any) -> tuple[APIClient, str]:
    _, key = api_token_create(name=name, actor=SystemActor("test"), **extra)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, key


def _full_stack_client(key: str, settings: Any) -> APIClient:
    """A client whose requests go through every middleware and the DRF view."""
    settings.MIDDLEWARE = FULL_STACK
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _token_reads(queries: CaptureQueriesContext) -> int:
    return sum(ApiToken._meta.db_table in q["sql"] for q in queries.captured_queries)


@pytest.fixture
def fast_bank(admin_client: APIClient) -> int:
    create_bank(admin_client, "FAST")
    return add_signals(admin_client, "FAST", {"pdq": pdq(1)})["id"]


@pytest.mark.django_db
class AnswerTests:
    @pytest.mark.parametrize("path", LOOKUPS)
    def test_it_answers_with_the_drf_views_bytes_and_headers(
        self, path: str, fast_bank: int, platform_key: str, settings: Any
    ) -> None:
        fast = APIClient()
        fast.credentials(HTTP_AUTHORIZATION=f"Token {platform_key}")
        with CaptureQueriesContext(connection):
            fast.get(path)  # the token's check is read once ...
        with CaptureQueriesContext(connection) as queries:
            answer = fast.get(path)
        assert _token_reads(queries) == 0  # ... and reused: the lean path answered
        full = _full_stack_client(platform_key, settings).get(path)
        assert answer.status_code == full.status_code == 200
        assert answer.content == full.content
        for header in HEADERS:
            assert answer.get(header) == full.get(header), header
        assert "FAST" in answer.content.decode() or "matches" in answer.json()

    def test_a_match_is_reported_with_its_id_and_distance(
        self, fast_bank: int, platform_client: APIClient
    ) -> None:
        response = platform_client.get(
            f"/m/raw_lookup?signal_type=pdq&signal={flip(pdq(1), 7)}&include_distance=true"
        )
        assert response.json() == {"matches": [{"bank_content_id": fast_bank, "distance": "7"}]}

    def test_a_console_token_of_a_lead_is_served_and_its_permission_checked(
        self, fast_bank: int, lead_client: APIClient, moderator_client: APIClient
    ) -> None:
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        for _ in range(2):
            assert lead_client.get(path).json() == {"matches": [fast_bank]}
            assert moderator_client.get(path).status_code == 403


@pytest.mark.django_db
class RefusalTests:
    """Every refusal is the full stack's, with its status and body."""

    def test_no_token_a_wrong_one_or_a_bad_header_is_401(self, fast_bank: int) -> None:
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert APIClient().get(path).status_code == 401
        for header in ("Token nope", "Token", "Token a b", "Bearer x", "token"):
            response = APIClient().get(path, HTTP_AUTHORIZATION=header)
            assert response.status_code == 401, header
            assert response.json()["error"]["code"] in (
                "authentication_failed",
                "not_authenticated",
            )
            assert response.json()["message"] == response.json()["error"]["message"]

    def test_an_outsiders_token_is_403_every_time(
        self, fast_bank: int, outsider_client: APIClient
    ) -> None:
        path = f"/m/lookup?signal_type=pdq&signal={pdq(1)}"
        for _ in range(2):
            response = outsider_client.get(path)
            assert response.status_code == 403
            assert "FAST" not in response.content.decode()

    @pytest.mark.parametrize(
        ("path", "code"),
        [
            (f"/m/raw_lookup?signal_type=nope&signal={pdq(1)}", "unknown_signal_type"),
            ("/m/raw_lookup?signal_type=pdq&signal=abc", "invalid_signal"),
            (f"/m/raw_lookup?signal_type=pdq&signal={'z' * 64}", "invalid_signal"),
            ("/m/raw_lookup?signal_type=pdq", "invalid"),
            (f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}&quality=101", "invalid"),
            ("/m/lookup?url=http://example.org/a.jpg", "url_fetch_disabled"),
            ("/m/lookup?signal_type=pdq", "invalid_request"),
        ],
    )
    def test_bad_input_is_the_full_stacks_400(
        self, path: str, code: str, fast_bank: int, platform_client: APIClient
    ) -> None:
        response = platform_client.get(path)
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == code

    def test_a_host_not_allowed_is_400_and_plain_http_is_redirected_where_https_is_required(
        self, fast_bank: int, platform_key: str, settings: Any
    ) -> None:
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        client = APIClient(HTTP_AUTHORIZATION=f"Token {platform_key}")
        assert client.get(path).status_code == 200  # the token's check is now reused
        assert client.get(path, HTTP_HOST="evil.example").status_code == 400
        settings.SECURE_SSL_REDIRECT = True
        # A new client: Django's SecurityMiddleware reads the setting when it is loaded.
        client = APIClient(HTTP_AUTHORIZATION=f"Token {platform_key}")
        assert client.get(path).status_code == 301
        assert client.get(path, secure=True).status_code == 200

    def test_other_methods_and_routes_are_not_taken(
        self, fast_bank: int, platform_client: APIClient
    ) -> None:
        assert platform_client.post("/m/raw_lookup").status_code == 405
        assert (
            platform_client.head(f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}").status_code
            == 200
        )
        assert platform_client.get("/m/raw_lookup/").status_code == 404


@pytest.mark.django_db
class TokenReuseTests:
    def test_a_revoked_token_is_refused_at_once_without_reuse(
        self, fast_bank: int, settings: Any
    ) -> None:
        settings.SAFEGUARD_TOKEN_CACHE_SECONDS = 0
        client, _ = _token("revoked-now")
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert client.get(path).status_code == 200
        api_token_revoke(token=ApiToken.objects.get(name="revoked-now"), actor=SystemActor("t"))
        assert client.get(path).status_code == 401

    def test_a_revoked_token_is_refused_once_its_reuse_has_run_out(
        self, fast_bank: int, settings: Any
    ) -> None:
        settings.SAFEGUARD_TOKEN_CACHE_SECONDS = 1
        client, _ = _token("revoked-soon")
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert client.get(path).status_code == 200
        api_token_revoke(token=ApiToken.objects.get(name="revoked-soon"), actor=SystemActor("t"))
        # Within the reuse (documented: SAFEGUARD_TOKEN_CACHE_SECONDS) it may still answer;
        # every other route refuses it already.
        assert client.get("/m/index/status").status_code == 401
        time.sleep(1.1)
        response = client.get(path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"

    def test_an_expired_token_is_refused_at_once_even_while_reused(
        self, fast_bank: int, settings: Any
    ) -> None:
        settings.SAFEGUARD_TOKEN_CACHE_SECONDS = 60
        client, _ = _token("expiring", expires_at=timezone.now() + timedelta(seconds=1))
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert client.get(path).status_code == 200
        time.sleep(1.1)
        assert client.get(path).status_code == 401

    def test_a_deactivated_user_is_refused_once_the_reuse_has_run_out(
        self, fast_bank: int, lead: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_TOKEN_CACHE_SECONDS = 1
        _, key = api_token_create(name="lead-token", user=lead, actor=SystemActor("test"))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert client.get(path).status_code == 200
        type(lead).objects.filter(pk=lead.pk).update(is_active=False)
        time.sleep(1.1)
        assert client.get(path).status_code == 401


@pytest.mark.django_db
class RateLimitTests:
    def test_the_lean_path_and_the_other_routes_count_against_one_bucket(
        self, fast_bank: int, platform_client: APIClient, settings: Any
    ) -> None:
        settings.SAFEGUARD_API_RATE = "3/min"
        settings.SAFEGUARD_THROTTLE_NAMESPACE = uuid.uuid4().hex
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert platform_client.get(path).status_code == 200
        assert platform_client.get("/m/index/status").status_code == 200
        assert platform_client.get(path).status_code == 200
        limited = platform_client.get(path)
        assert limited.status_code == 429 and 0 < int(limited["Retry-After"]) <= 60
        assert limited.json()["error"]["code"] == "throttled"
        assert platform_client.get("/m/index/status").status_code == 429

    def test_bad_input_is_counted_once_as_on_every_route(
        self, fast_bank: int, platform_client: APIClient, settings: Any
    ) -> None:
        settings.SAFEGUARD_API_RATE = "3/min"
        settings.SAFEGUARD_THROTTLE_NAMESPACE = uuid.uuid4().hex
        assert platform_client.get("/m/raw_lookup?signal_type=pdq&signal=abc").status_code == 400
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert [platform_client.get(path).status_code for _ in range(3)] == [200, 200, 429]

    def test_a_session_user_goes_the_full_way(self, fast_bank: int, lead: Any) -> None:
        response = client_for(lead).get(f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}")
        assert response.json() == {"matches": [fast_bank]}
