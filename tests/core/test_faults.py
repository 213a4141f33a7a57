"""Faults against the real services: nothing lost, nothing duplicated, state consistent."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg2
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from core.models import AuditEvent
from moderation.media.synthetic import synthetic_jpeg
from moderation.models import Item, Media
from moderation.services import intake
from moderation.tasks.hashing import sweep_stuck_media_task
from tests.conftest import service_unavailable
from tests.services import require_redis
from tests.worker import start_worker, use_broker, wait_for

__all__ = ["start_worker"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Redis:
    """A private redis-server we may stop and start (the shared one must stay up)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, timeout=20, message="redis to start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def private_redis() -> Iterator[_Redis]:
    if not shutil.which("redis-server"):
        service_unavailable("needs redis-server on PATH")
    server = _Redis(_free_port())
    server.start()
    yield server
    server.stop()


def _submit(client: APIClient, external_id: str, seed: int) -> Any:
    return client.post(
        "/api/v1/items",
        {
            "source": "acme",
            "external_id": external_id,
            "kind": "image",
            "subject_account_id": external_id,
            "media": SimpleUploadedFile("a.jpg", synthetic_jpeg(seed, 320, 240)),
        },
        format="multipart",
    )


@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RedisOutageTests:
    def test_redis_stopped_during_intake_and_restarted_loses_and_duplicates_nothing(
        self, private_redis: _Redis, start_worker: Any, platform_client: APIClient, settings: Any
    ) -> None:
        original = require_redis()
        use_broker(private_redis.url)
        try:
            worker = start_worker(REDIS_URL=private_redis.url)
            first = _submit(platform_client, "before", 1)
            assert first.status_code == 201
            wait_for(
                lambda: Media.objects.filter(hash_status="done").count() == 1,
                message=f"the first item\n{worker.output()}",
            )
            private_redis.stop()
            during = _submit(platform_client, "during", 2)
            assert during.status_code == 201  # stored although the broker is down
            assert Media.objects.get(item_id=during.json()["id"]).hash_status == "pending"
            private_redis.start()
            settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS = 0
            wait_for(
                lambda: (
                    (sweep_stuck_media_task() or True)
                    and not Media.objects.exclude(hash_status="done").exists()
                ),
                timeout=90,
                interval=2,
                message=f"the item stored during the outage\n{worker.output()}",
            )
        finally:
            use_broker(original)
        hashed = Counter(
            AuditEvent.objects.filter(verb="media.hashed").values_list("object_id", flat=True)
        )
        assert len(hashed) == 2 and set(hashed.values()) == {1}
        assert Item.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class DatabaseDropTests:
    def test_a_connection_dropped_mid_request_stores_nothing_and_a_retry_stores_once(
        self, platform_client: APIClient
    ) -> None:
        real_validate = intake.validate_media
        db = connection.settings_dict

        def drop_connection_then_validate(*args: Any, **kwargs: Any) -> Any:
            # Fault injection: kill this request's PostgreSQL backend from another connection,
            # after the upload was staged and before anything is written.
            pid = connection.connection.info.backend_pid
            with psycopg2.connect(
                host=db["HOST"] or "127.0.0.1",
                port=db["PORT"] or 5432,
                user=db["USER"],
                dbname=db["NAME"],
            ) as other:
                other.autocommit = True
                other.cursor().execute("SELECT pg_terminate_backend(%s)", [pid])
            time.sleep(0.2)
            return real_validate(*args, **kwargs)

        with mock.patch.object(intake, "validate_media", drop_connection_then_validate):
            response = _submit(platform_client, "drop-1", 3)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert response["Retry-After"] == "5"
        connection.close()  # what the end of a real request does with a dead connection
        assert not Item.objects.exists() and not Media.objects.exists()
        staged = Path(settings.EVIDENCE_ROOT)
        assert not [p for p in staged.rglob("*") if p.is_file()], "an orphaned evidence file"
        retry = _submit(platform_client, "drop-1", 3)
        assert retry.status_code == 201
        assert Item.objects.filter(external_id="drop-1").count() == 1
