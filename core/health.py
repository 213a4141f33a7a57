"""Dependency probes for /healthz. Short timeouts: a health check must answer quickly."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.db import connection


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 — any failure means "down"; details go to the log only
        return "down"
    return "ok"


def broker_status() -> str:
    url = settings.CELERY_BROKER_URL
    if not url:
        return "not_configured"
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except Exception:  # noqa: BLE001 — any failure means "down"
        return "down"
    finally:
        with contextlib.suppress(Exception):
            client.close()
    return "ok"
