"""hma.fastpath: token-authenticated GET lookups answered without the rest of the stack — the
same answers and headers as the DRF views, the token check reused only briefly, every refusal
left to the full stack (401/403/429/400 as before), and the rate limit shared with it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.metrics import REQUESTS
from core.models import ApiToken
from core.requestid import current_request_id
from core.services import api_token_create, api_token_revoke
from hma.fastpath import TRIED
from hma.wsgi import HmaLookupWsgi
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
    "Content-Length",
    "Vary",
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

    @pytest.mark.parametrize(
        ("accept", "query", "status"),
        [
            ("text/html", "", 406),
            ("application/json; indent=2", "", 200),
            ("application/json, text/plain, */*", "", 200),
            ("*/*", "&format=xml", 404),
        ],
    )
    def test_what_drfs_content_negotiation_decides_is_left_to_it(
        self, accept: str, query: str, status: int, fast_bank: int, platform_key: str, settings: Any
    ) -> None:
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}{query}"
        client = APIClient(HTTP_AUTHORIZATION=f"Token {platform_key}")
        client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}")  # the token check reused
        answer = client.get(path, HTTP_ACCEPT=accept)
        full = _full_stack_client(platform_key, settings).get(path, HTTP_ACCEPT=accept)
        assert answer.status_code == full.status_code == status
        assert answer.content == full.content

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


# --- The WSGI entry point (hma.wsgi, as config.wsgi serves it under gunicorn) -------------------


RAW = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"


class _Django:
    """Django's WSGI handler with the settings' middleware, recording what it was handed."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.calls: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls.append(environ)
        return self.handler(environ, start_response)


def _wsgi_get(app: Any, path: str, key: str | None = None, **extra: Any) -> Any:
    """(status, headers, body) of one GET through a WSGI application, as gunicorn calls it:
    the body iterated, then closed. The test's transaction must survive request_started and
    request_finished, as in Django's test client."""
    if key is not None:
        extra.setdefault("HTTP_AUTHORIZATION", f"Token {key}")
    environ = RequestFactory().get(path, **extra).environ
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, headers

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = app(environ, start_response)
        try:
            content = b"".join(body)
        finally:
            body.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(answer["status"].split()[0]), answer["headers"], content


def _header_map(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


@pytest.mark.django_db
class WsgiEntryTests:
    """hma.wsgi answers the lookups before Django; anything else is Django's, untouched."""

    @pytest.mark.parametrize("path", LOOKUPS)
    def test_it_answers_with_the_full_stacks_bytes_and_every_header(
        self, path: str, fast_bank: int, platform_key: str, settings: Any
    ) -> None:
        django = _Django()
        app = HmaLookupWsgi(django)
        _wsgi_get(app, path, platform_key)  # the token's check is read once ...
        with CaptureQueriesContext(connection) as queries:
            status, headers, body = _wsgi_get(app, path, platform_key)
        assert _token_reads(queries) == 0  # ... and reused
        assert status == 200 and django.calls == []  # Django was not entered
        settings.MIDDLEWARE = FULL_STACK
        full_status, full_headers, full_body = _wsgi_get(_Django(), path, platform_key)
        assert (status, body) == (full_status, full_body)
        mine, theirs = _header_map(headers), _header_map(full_headers)
        assert mine.pop("x-request-id") and theirs.pop("x-request-id")
        assert mine == theirs
        assert mine["content-length"] == str(len(body))

    def test_the_request_id_is_echoed_counted_and_cleared_when_the_answer_is_closed(
        self, fast_bank: int, platform_key: str
    ) -> None:
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        app = HmaLookupWsgi(_Django())
        counter = REQUESTS.labels("GET", "/m/raw_lookup", "200")
        before = counter._value.get()
        _, headers, _ = _wsgi_get(app, path, platform_key, HTTP_X_REQUEST_ID="lb-0123456789")
        assert _header_map(headers)["x-request-id"] == "lb-0123456789"
        _, headers, _ = _wsgi_get(app, path, platform_key, HTTP_X_REQUEST_ID="no good id!")
        assert len(_header_map(headers)["x-request-id"]) == 32
        assert counter._value.get() == before + 2
        assert current_request_id() is None  # request_finished, as Django's response sends

    @pytest.mark.parametrize(
        ("path", "extra", "status"),
        [
            (RAW, {"key": "nope"}, 401),
            (RAW, {"HTTP_AUTHORIZATION": "Token"}, 401),
            (RAW, {"HTTP_AUTHORIZATION": "Token a b"}, 401),
            (RAW, {"HTTP_ACCEPT": "text/html"}, 406),
            (RAW, {"HTTP_ACCEPT": "application/json; indent=2"}, 200),
            (RAW + "&format=xml", {}, 404),
            ("/m/raw_lookup?signal_type=pdq&signal=abc", {}, 400),
            (f"/m/raw_lookup?signal_type=nope&signal={pdq(1)}", {}, 400),
            ("/m/lookup?url=http://example.org/a.jpg", {}, 400),
            (f"/m/lookup?signal_type=pdq&signal={pdq(1)}", {"HTTP_HOST": "evil.example"}, 400),
        ],
    )
    def test_each_refusal_is_left_to_django_which_answers_as_before(
        self, path: str, extra: dict[str, Any], status: int, fast_bank: int, platform_key: str
    ) -> None:
        extra = {"key": platform_key, **extra}
        django = _Django()
        got, _, body = _wsgi_get(HmaLookupWsgi(django), path, **extra)
        assert len(django.calls) == 1 and django.calls[0][TRIED] is True
        expected, _, expected_body = _wsgi_get(_Django(), path, **extra)
        assert (got, body) == (expected, expected_body) and got == status

    def test_no_permission_over_the_rate_and_plain_http_are_left_to_django(
        self, fast_bank: int, platform_key: str, outsider: Any, settings: Any
    ) -> None:
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        _, outsider_key = api_token_create(name="o", user=outsider, actor=SystemActor("t"))
        django = _Django()
        app = HmaLookupWsgi(django)
        assert _wsgi_get(app, path, outsider_key)[0] == 403
        settings.SAFEGUARD_API_RATE = "2/min"
        settings.SAFEGUARD_THROTTLE_NAMESPACE = uuid.uuid4().hex
        statuses = [_wsgi_get(app, path, platform_key)[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        settings.SAFEGUARD_API_RATE = "100000/min"
        settings.SECURE_SSL_REDIRECT = True
        django = _Django()  # SecurityMiddleware reads the setting when it is loaded
        app = HmaLookupWsgi(django)
        assert _wsgi_get(app, path, platform_key)[0] == 301
        assert _wsgi_get(app, path, platform_key, secure=True)[0] == 200
        assert len(django.calls) == 1

    def test_other_methods_paths_and_sessions_go_straight_to_django(
        self, fast_bank: int, platform_key: str, lead: Any
    ) -> None:
        django = _Django()
        app = HmaLookupWsgi(django)
        environ = (
            RequestFactory()
            .head(
                f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}",
                HTTP_AUTHORIZATION=f"Token {platform_key}",
            )
            .environ
        )
        app(environ, lambda *a: None).close()
        assert _wsgi_get(app, "/m/raw_lookup/", platform_key)[0] == 404
        assert _wsgi_get(app, f"/m/lookup?signal_type=pdq&signal={pdq(1)}")[0] == 401
        assert len(django.calls) == 3 and not any(TRIED in e for e in django.calls)

    def test_an_error_on_the_lean_path_leaves_the_request_to_django(
        self, fast_bank: int, platform_key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*args: Any) -> None:
            raise ConnectionError("redis went away")

        monkeypatch.setattr("hma.fastpath.rate_hit", broken)
        django = _Django()
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        status, _, body = _wsgi_get(HmaLookupWsgi(django), path, platform_key)
        assert status == 200 and json.loads(body) == {"matches": [fast_bank]}
        assert len(django.calls) == 1  # the DRF view answered, with its own throttle

    def test_a_revoked_token_is_refused_once_its_reuse_has_run_out(
        self, fast_bank: int, settings: Any
    ) -> None:
        settings.SAFEGUARD_TOKEN_CACHE_SECONDS = 1
        _, key = _token("revoked-wsgi")
        app = HmaLookupWsgi(_Django())
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert _wsgi_get(app, path, key)[0] == 200
        api_token_revoke(token=ApiToken.objects.get(name="revoked-wsgi"), actor=SystemActor("t"))
        # Within SAFEGUARD_TOKEN_CACHE_SECONDS it may still answer; every other route refuses.
        assert _wsgi_get(app, "/m/index/status", key)[0] == 401
        time.sleep(1.1)
        status, _, body = _wsgi_get(app, path, key)
        assert status == 401
        assert json.loads(body)["error"]["code"] == "authentication_failed"

    def test_a_revoked_token_is_refused_at_once_without_reuse(
        self, fast_bank: int, settings: Any
    ) -> None:
        settings.SAFEGUARD_TOKEN_CACHE_SECONDS = 0
        _, key = _token("revoked-wsgi-now")
        app = HmaLookupWsgi(_Django())
        path = f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}"
        assert _wsgi_get(app, path, key)[0] == 200
        api_token_revoke(
            token=ApiToken.objects.get(name="revoked-wsgi-now"), actor=SystemActor("t")
        )
        assert _wsgi_get(app, path, key)[0] == 401

    def test_config_wsgi_serves_through_it(self) -> None:
        from config.wsgi import application

        assert isinstance(application, HmaLookupWsgi)
