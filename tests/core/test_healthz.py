from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


@pytest.mark.django_db
class HealthzTests:
    def test_it_reports_healthy_dependencies(self, client: Client, settings: Any) -> None:
        settings.CELERY_BROKER_URL = ""
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "broker": "not_configured"}

    @pytest.mark.redis
    def test_it_checks_the_real_broker_when_one_is_configured(
        self, client: Client, settings: Any
    ) -> None:
        from tests.services import require_redis

        settings.CELERY_BROKER_URL = require_redis()
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["broker"] == "ok"

    def test_it_answers_503_when_the_broker_is_down(self, client: Client, settings: Any) -> None:
        # Nothing listens on port 1: the broker is "down".
        settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["broker"] == "down"
        assert response.json()["status"] == "unavailable"

    def test_it_needs_no_login_and_says_nothing_more(self, client: Client, settings: Any) -> None:
        settings.CELERY_BROKER_URL = ""
        body = client.get("/healthz").json()
        assert set(body) == {"status", "database", "broker"}
