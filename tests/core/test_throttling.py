"""core.throttling: API requests without credentials are limited per client address; every
API response is no-store; ids that are not numbers and over-deep or oversized bodies are 4xx in
the documented error shape (the probe's 500s and HTML errors)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.test import APIClient

from core.throttling import rate_hit
from tests.conftest import client_for


@pytest.mark.django_db
class AnonymousLimitTests:
    def test_requests_without_credentials_are_throttled_per_address(
        self, settings: Any, lead: Any
    ) -> None:
        cache.clear()
        settings.SAFEGUARD_API_ANON_RATE = "3/min"
        anonymous = APIClient(REMOTE_ADDR="203.0.113.7")
        statuses = [anonymous.get("/api/v1/principles").status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        limited = anonymous.get("/api/v1/principles")
        assert limited.json()["error"]["code"] == "throttled" and int(limited["Retry-After"]) > 0
        # Another address, and anyone with credentials, still get through.
        assert APIClient(REMOTE_ADDR="203.0.113.8").get("/api/v1/principles").status_code == 401
        assert client_for(lead).get("/api/v1/principles").status_code == 200


@pytest.mark.django_db
class ResponseShapeTests:
    def test_api_responses_are_never_cached(self, lead: Any) -> None:
        response = client_for(lead).get("/api/v1/principles")
        assert response.status_code == 200 and "no-store" in response["Cache-Control"]
        assert "no-store" in APIClient().get("/api/v1/cases/1")["Cache-Control"]

    def test_deeply_nested_json_is_a_400_not_a_500(self, platform_client: APIClient) -> None:
        body = "[" * 5000 + "]" * 5000
        response = platform_client.post("/api/v1/items", data=body, content_type="application/json")
        assert response.status_code == 400
        assert "nested deeper" in response.json()["error"]["message"]
        moderate = {"source": "acme", "external_id": "x", "kind": "text", "text": "t"}
        nested: Any = moderate
        for _ in range(40):
            nested = {"a": nested}
        response = platform_client.post(
            "/api/v1/items", data=json.dumps(nested), content_type="application/json"
        )
        assert response.status_code == 400

    def test_an_oversized_body_is_a_json_413(
        self, platform_client: APIClient, settings: Any
    ) -> None:
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        body = json.dumps(
            {"source": "acme", "external_id": "x", "kind": "text", "text": "t" * 5000}
        )
        response = platform_client.post("/api/v1/items", data=body, content_type="application/json")
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"

    def test_ids_out_of_range_or_not_numbers_are_4xx(self, lead: Any) -> None:
        client = client_for(lead)
        response = client.get("/api/v1/cases/99999999999999999999")
        assert response.status_code in (400, 404), response.status_code
        assert "error" in response.json()
        assert client.get("/referrals/new?case=abc").status_code == 400
        assert client.get("/referrals/new?case=99999999999999999999").status_code in (400, 404)


class FixedWindowTests:
    """core.throttling.rate_hit: one counter per bucket, a window that opens at its first
    request (one Redis round trip), shared by the DRF throttle and the HMA lookup fast path."""

    def test_a_bucket_allows_its_rate_then_answers_the_seconds_left(self) -> None:
        bucket = f"throttle:test:{uuid.uuid4().hex}"
        assert [rate_hit(bucket, "2/min") for _ in range(2)] == [None, None]
        wait = rate_hit(bucket, "2/min")
        assert wait is not None and 0 < wait <= 60
        # Another bucket is unaffected.
        assert rate_hit(f"{bucket}-other", "2/min") is None

    def test_the_window_opens_at_the_first_request_and_expires_with_it(self) -> None:
        bucket = f"throttle:test:{uuid.uuid4().hex}"
        assert rate_hit(bucket, "1/s") is None
        assert rate_hit(bucket, "1/s") == 1
        time.sleep(1.2)
        assert rate_hit(bucket, "1/s") is None

    def test_it_counts_in_a_cache_without_redis_too(self, settings: Any) -> None:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        bucket = f"throttle:test:{uuid.uuid4().hex}"
        assert [rate_hit(bucket, "2/min") for _ in range(2)] == [None, None]
        wait = rate_hit(bucket, "2/min")
        assert wait is not None and 0 < wait <= 60

    def test_it_loads_the_script_again_after_redis_lost_it(self) -> None:
        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            pytest.skip("the Redis path: REDIS_URL is not set")
        bucket = f"throttle:test:{uuid.uuid4().hex}"
        assert rate_hit(bucket, "2/min") is None
        backend._cache.get_client(write=True).script_flush()  # a restart, or SCRIPT FLUSH
        assert rate_hit(bucket, "2/min") is None
        assert rate_hit(bucket, "2/min") is not None  # the count survived: three in all

    def test_a_connection_that_fails_is_dropped_and_the_hit_goes_through_redis_py(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            pytest.skip("the Redis path: REDIS_URL is not set")
        bucket = f"throttle:test:{uuid.uuid4().hex}"
        assert rate_hit(bucket, "3/min") is None
        pool = backend._cache._get_connection_pool(write=True)
        failed: list[Any] = []
        send = Connection.send_packed_command

        def fail_once(self: Connection, command: Any, check_health: bool = True) -> None:
            if not failed:
                failed.append(self)
                raise RedisConnectionError("reset by peer")
            send(self, command, check_health)

        dropped: list[Any] = []
        disconnect = Connection.disconnect

        def spy(self: Connection, *args: Any, **kwargs: Any) -> None:
            dropped.append(self)
            disconnect(self, *args, **kwargs)

        monkeypatch.setattr(Connection, "send_packed_command", fail_once)
        monkeypatch.setattr(Connection, "disconnect", spy)
        assert rate_hit(bucket, "3/min") is None
        assert failed and dropped[0] is failed[0]  # dropped before it went back to the pool
        assert rate_hit(bucket, "3/min") is None  # counted once each: the third of three
        assert rate_hit(bucket, "3/min") is not None
        assert pool is backend._cache._get_connection_pool(write=True)
