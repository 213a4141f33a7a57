"""Helpers for tests that need real services (Redis, a Celery worker)."""

from __future__ import annotations

import os

import redis

from tests.conftest import service_unavailable

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def require_redis() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        service_unavailable(f"needs Redis at {REDIS_URL}: {exc}")
    return REDIS_URL
