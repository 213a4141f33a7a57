"""The hashing tasks (moderation.tasks.hashing) on a real Celery worker, against Redis and
PostgreSQL.

These tests commit for real (transactional database) so that the worker process sees the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.models import AuditEvent
from moderation.media.synthetic import synthetic_jpeg, synthetic_png, write_synthetic_video
from moderation.media.video import hash_video, vpdq_format
from moderation.models import Item, Match, Media, MediaFrame
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.tasks.hashing import sweep_stuck_media_task
from tests.services import require_redis
from tests.worker import WorkerProcess, start_worker, use_broker, wait_for

pytestmark = [
    pytest.mark.worker,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

__all__ = ["start_worker"]  # the fixture, imported for pytest


def _submit(client: APIClient, external_id: str, data: bytes, name: str = "a.jpg") -> Any:
    response = client.post(
        "/api/v1/items",
        {
            "source": "acme",
            "external_id": external_id,
            "kind": "image",
            "subject_account_id": external_id,
            "media": SimpleUploadedFile(name, data),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def _all_hashed() -> bool:
    return not Media.objects.exclude(hash_status="done").exists()


class RealWorkerTests:
    def test_a_submitted_item_is_hashed_and_matched_end_to_end(
        self, start_worker: Callable[..., WorkerProcess], platform_client: APIClient
    ) -> None:
        data = synthetic_jpeg(21, 640, 480)
        hl, _ = hash_list_upsert(name="S", algorithm="sha256", actor=SystemActor("test"))
        imp = hash_import_create(
            hash_list=hl,
            filename="s.csv",
            actor=SystemActor("test"),
            content=f"{hashlib.sha256(data).hexdigest()},A,\n".encode(),
        )
        hash_import_run(import_id=imp.pk)
        worker = start_worker()
        body = _submit(platform_client, "e2e-1", data)
        wait_for(
            lambda: Media.objects.filter(hash_status="done").exists(),
            message=f"hashing by the worker\n{worker.output()}",
        )
        detail = platform_client.get(f"/api/v1/items/{body['id']}").json()
        assert detail["status"] == "ready" and len(detail["media"]["pdq"]) == 64
        assert [m["list"] for m in detail["matches"]] == ["S"]
        assert "moderation.hash_media_batch" in worker.output()

    def test_with_the_broker_down_intake_still_stores_and_the_item_is_processed_later(
        self, start_worker: Callable[..., WorkerProcess], platform_client: APIClient, settings: Any
    ) -> None:
        url = require_redis()
        use_broker("redis://127.0.0.1:1/0")  # nothing listens there: the broker is down
        try:
            body = _submit(platform_client, "down-1", synthetic_jpeg(22, 320, 240))
        finally:
            use_broker(url)
        media = Media.objects.get(item_id=body["id"])
        assert media.hash_status == "pending"  # stored, 201, waiting
        worker = start_worker()
        settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS = 0
        assert sweep_stuck_media_task() == 1  # beat's sweeper re-enqueues it
        wait_for(_all_hashed, message=f"the swept item to be hashed\n{worker.output()}")
        assert Item.objects.get(pk=body["id"]).status == "ready"

    def test_a_worker_killed_mid_task_loses_nothing_and_records_each_result_once(
        self, start_worker: Callable[..., WorkerProcess], platform_client: APIClient, settings: Any
    ) -> None:
        # Larger PNGs make each batch slow enough to be caught in the middle; more than one
        # batch's worth (SAFEGUARD_HASH_BATCH_SIZE, 12) so that the killed task held extras.
        ids = [
            _submit(platform_client, f"kill-{i}", synthetic_png(100 + i, 1400, 1050), name="x.png")[
                "id"
            ]
            for i in range(14)
        ]
        worker = start_worker()
        wait_for(
            lambda: Media.objects.filter(hash_status="processing").exists(),
            interval=0.01,
            message="a batch in progress",
        )
        killed = worker.kill_child()
        wait_for(
            lambda: worker.children() and killed not in worker.children(),
            message="the pool to replace the killed process",
        )
        # Media claimed as batch extras by the killed process stay "processing" until the
        # sweeper (beat) finds them; run it now rather than waiting for its timeout.
        settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS = 0
        wait_for(
            lambda: sweep_stuck_media_task() == 0 and _all_hashed(),
            timeout=120,
            interval=1,
            message=f"every item to be hashed after the kill\n{worker.output()}",
        )
        assert Media.objects.filter(hash_status="done").count() == len(ids)
        hashed = Counter(
            AuditEvent.objects.filter(verb="media.hashed").values_list("object_id", flat=True)
        )
        assert set(hashed.values()) == {1}  # each result recorded exactly once
        assert len(hashed) == len(ids)
        assert not Match.objects.exists()


def _submit_batch(client: APIClient, prefix: str, images: list[bytes], name: str = "x.png") -> Any:
    items = [
        {
            "source": "acme",
            "external_id": f"{prefix}-{i}",
            "kind": "image",
            "subject_account_id": f"{prefix}-{i}",
            "media": f"f{i}",
        }
        for i in range(len(images))
    ]
    data: dict[str, Any] = {"items": json.dumps(items)}
    for i, content in enumerate(images):
        data[f"f{i}"] = SimpleUploadedFile(name, content)
    response = client.post("/api/v1/items/batch", data, format="multipart")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert {r["status"] for r in results} == {201}, results
    return [r["item"]["id"] for r in results]


class RealWorkerBatchTests:
    def test_a_batch_sent_with_the_broker_down_is_stored_and_hashed_once_swept(
        self, start_worker: Callable[..., WorkerProcess], platform_client: APIClient, settings: Any
    ) -> None:
        url = require_redis()
        use_broker("redis://127.0.0.1:1/0")  # nothing listens there: the broker is down
        try:
            ids = _submit_batch(
                platform_client, "bdown", [synthetic_jpeg(40 + i, 320, 240) for i in range(5)]
            )
        finally:
            use_broker(url)
        assert Media.objects.filter(item_id__in=ids, hash_status="pending").count() == 5
        worker = start_worker()
        settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS = 0
        assert sweep_stuck_media_task() == 5  # beat's sweeper re-enqueues them, batched
        wait_for(_all_hashed, message=f"the swept batch to be hashed\n{worker.output()}")
        assert set(Item.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"ready"}
        hashed = Counter(
            AuditEvent.objects.filter(verb="media.hashed").values_list("object_id", flat=True)
        )
        assert len(hashed) == 5 and set(hashed.values()) == {1}

    def test_a_worker_killed_mid_batch_hashes_each_batch_item_once(
        self, start_worker: Callable[..., WorkerProcess], platform_client: APIClient, settings: Any
    ) -> None:
        ids = _submit_batch(
            platform_client, "bkill", [synthetic_png(200 + i, 1200, 900) for i in range(16)]
        )
        worker = start_worker()
        wait_for(
            lambda: Media.objects.filter(hash_status="processing").exists(),
            interval=0.01,
            message="a batch in progress",
        )
        killed = worker.kill_child()
        wait_for(
            lambda: worker.children() and killed not in worker.children(),
            message="the pool to replace the killed process",
        )
        settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS = 0
        # The sweeper runs every second here, far faster than beat: room for its re-enqueues.
        settings.SAFEGUARD_HASH_MAX_ATTEMPTS = 50
        wait_for(
            lambda: sweep_stuck_media_task() == 0 and _all_hashed(),
            timeout=240,
            interval=1,
            message=f"every batch item to be hashed after the kill\n{worker.output()}",
        )
        assert Media.objects.filter(item_id__in=ids, hash_status="done").count() == len(ids)
        hashed = Counter(
            AuditEvent.objects.filter(verb="media.hashed").values_list("object_id", flat=True)
        )
        assert len(hashed) == len(ids) and set(hashed.values()) == {1}


class RealWorkerVideoTests:
    def test_a_submitted_video_is_frame_hashed_and_matched_against_image_and_video_lists(
        self,
        start_worker: Callable[..., WorkerProcess],
        platform_client: APIClient,
        tmp_path: Any,
    ) -> None:
        """An MP4 on a real worker (its decoder in a child process): frame hashes stored, a
        known still found inside it and the listed video it re-encodes found, the case raised;
        an unrelated video matches nothing."""
        listed = write_synthetic_video(tmp_path / "listed.mp4", 31, seconds=8)
        frames = hash_video(listed).frames
        actor = SystemActor("test")
        images, _ = hash_list_upsert(name="Stills", algorithm="pdq", actor=actor)
        images.hashes.create(value=frames[3].pdq, category="B")
        videos, _ = hash_list_upsert(name="Videos", algorithm="vpdq", actor=actor)
        imp = hash_import_create(
            hash_list=videos,
            filename="listed.txt",
            actor=actor,
            content=vpdq_format(frames).encode(),
        )
        hash_import_run(import_id=imp.pk)
        upload = write_synthetic_video(
            tmp_path / "upload.mp4", 31, seconds=8, width=480, height=360, crf=32, logo=True
        )
        other = write_synthetic_video(tmp_path / "other.mp4", 77, seconds=8)
        worker = start_worker()
        for name, path in (("v-1", upload), ("v-2", other)):
            response = platform_client.post(
                "/api/v1/items",
                {
                    "source": "acme",
                    "external_id": name,
                    "kind": "video",
                    "subject_account_id": name,
                    "media": SimpleUploadedFile(path.name, path.read_bytes()),
                },
                format="multipart",
            )
            assert response.status_code == 201, response.content
        wait_for(_all_hashed, message=f"video hashing by the worker\n{worker.output()}")
        matched = Media.objects.get(item__external_id="v-1")
        assert matched.duration == 8.0 and MediaFrame.objects.filter(media=matched).count() == 8
        assert sorted(Match.objects.filter(media=matched).values_list("algorithm", flat=True)) == [
            "pdq",
            "vpdq",
        ]
        assert matched.item.case.category.code == "known_csam"
        unrelated = Media.objects.get(item__external_id="v-2")
        assert (
            unrelated.hash_status == "done" and not Match.objects.filter(media=unrelated).exists()
        )
