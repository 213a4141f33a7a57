"""The scale-out shape (README "Scaling out"): two web processes and two Celery workers split
by queue — one on `hashing`, one on `default,packets`, as docker-compose's `scale` profile runs
them — against one PostgreSQL database and one Redis, share the work and do nothing twice.

Both web processes are real gunicorn instances on free ports of 127.0.0.1; both workers are real
Celery workers (tests.worker). Intake goes through both web processes at once: single items,
batches, and the same external ids sent to both concurrently; some of the generated images are
on a synthetic known-hash list, so their cases are raised and a rule applies; a referral packet
is built. Each worker runs two processes, so claims race inside a worker as well as between
them. Duplicate task deliveries (as after a worker crash) are sent on purpose. Then:
each item stored once per (platform account, source, external id), each media hashed and
recorded once, each rule applied once per case and version, the packet built once, every task
ran only on the worker serving its queue, and the audit chain verifies.

These tests commit for real (transactional database) so that the other processes see the rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.conf import settings
from django.db.models import Count

from core.audit import SystemActor, audit_seal, audit_verify_chain
from core.enqueue import enqueue_on_commit
from core.models import AuditEvent
from moderation.media.synthetic import synthetic_jpeg
from moderation.models import Case, Item, Match, Media, RuleApplication
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from reports.packets import packet_approve, packet_draft, packet_submit
from tests.moderation.factories import make_rule
from tests.reports.factories import police
from tests.services import require_redis
from tests.worker import ROOT, WorkerProcess, start_worker, stop_process, wait_for, worker_env

pytestmark = [
    pytest.mark.worker,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

__all__ = ["start_worker"]  # the fixture, imported for pytest

HOST = "127.0.0.1"
LIST_NAME = "Synthetic SHA-256 list (scale-out test)"
WORKER_QUEUES = {"hashing": "hashing", "default": "default,packets"}
_RECEIVED = re.compile(r"Task ([\w.]+)\[[0-9a-f-]+\] received")
_TASK_ID = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] (received|succeeded|raised|retry)")


@dataclass
class WebProcess:
    """One gunicorn instance (a master and one gthread worker): one web container's shape."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    access_log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def requests_served(self) -> list[str]:
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return text.splitlines()

    def stop(self) -> None:
        stop_process(self.proc)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _shared_env(tmp_path: Path) -> dict[str, str]:
    """What every process of the deployment shares besides the database and the broker: one
    evidence master key (web encrypts, the hashing worker decrypts) and one signing key."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    return {
        "SAFEGUARD_EVIDENCE_MASTER_KEYS": f"scale-1:{key}",
        "SAFEGUARD_SIGNING_KEY_FILE": str(tmp_path / "keys" / "packet-signing-key.pem"),
        "SAFEGUARD_AUDIT_CHECKPOINT_DIR": str(settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR),
        "SAFEGUARD_API_RATE": "100000/min",
        "ALLOWED_HOSTS": HOST,
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def shared_env(tmp_path: Path) -> dict[str, str]:
    return _shared_env(tmp_path)


@pytest.fixture
def start_web(tmp_path: Path, shared_env: dict[str, str]) -> Iterator[Callable[[str], WebProcess]]:
    """A factory: `start_web(name)` launches gunicorn on a free port (it does not wait for it:
    `_wait_healthy`); all are stopped at teardown, before the test database is flushed."""
    started: list[WebProcess] = []

    def start(name: str) -> WebProcess:
        port = _free_port()
        log, access_log = tmp_path / f"{name}.log", tmp_path / f"{name}-access.log"
        env = {**worker_env(), **shared_env}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"{HOST}:{port}",
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "--access-logfile",
                str(access_log),
                "--access-logformat",
                "%(m)s %(U)s %(s)s",
                "--error-logfile",
                "-",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        web = WebProcess(name, proc, port, log, access_log)
        started.append(web)
        return web

    yield start
    for web in started:
        web.stop()


def _wait_healthy(web: WebProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.proc.poll() is not None:
            raise AssertionError(f"{web.name} exited early:\n{web.output()}")
        try:
            if requests.get(f"{web.url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{web.name} not healthy after {timeout}s:\n{web.output()}")


class Platform:
    """One platform's API token, sending to whichever web process it is given."""

    def __init__(self, key: str) -> None:
        self.headers = {"Authorization": f"Token {key}"}

    def single(self, web: WebProcess, item: dict[str, Any], image: bytes | None = None) -> Any:
        if image is None:
            response = requests.post(
                f"{web.url}/api/v1/items", json=item, headers=self.headers, timeout=60
            )
        else:
            response = requests.post(
                f"{web.url}/api/v1/items",
                data=item,
                files={"media": ("photo.jpg", image, "image/jpeg")},
                headers=self.headers,
                timeout=60,
            )
        assert response.status_code in (200, 201), (web.name, response.text)
        return response.status_code, response.json()["id"]

    def batch(self, web: WebProcess, items: list[dict[str, Any]], images: dict[str, bytes]) -> Any:
        url = f"{web.url}/api/v1/items/batch"
        if images:  # multipart: the items as JSON in one field, a file part per image
            response = requests.post(
                url,
                data={"items": json.dumps(items)},
                files=[(n, (f"{n}.jpg", data, "image/jpeg")) for n, data in images.items()],
                headers=self.headers,
                timeout=60,
            )
        else:
            response = requests.post(url, json={"items": items}, headers=self.headers, timeout=60)
        assert response.status_code == 200, (web.name, response.text)
        results = response.json()["results"]
        assert all(r["status"] in (200, 201) for r in results), (web.name, results)
        return [(r["status"], r["item"]["id"]) for r in results]


def _image_item(external_id: str, subject: str, part: str | None = None) -> dict[str, Any]:
    item = {"source": "acme", "external_id": external_id, "kind": "image"}
    item["subject_account_id"] = subject
    if part is not None:
        item["media"] = part
    return item


def _text_item(external_id: str, subject: str) -> dict[str, Any]:
    return {
        "source": "acme",
        "external_id": external_id,
        "kind": "text",
        "subject_account_id": subject,
        "text": "a synthetic flagged message (scale-out check)",
    }


def _queues_drained(client: redis.Redis) -> bool:
    """No message waiting in any queue and none delivered but unacknowledged (acks_late)."""
    waiting = sum(
        client.llen(key)
        for key in client.scan_iter()
        if key.split(b"\x06\x16")[0] in (b"hashing", b"default", b"packets")
        and client.type(key) == b"list"
    )
    return waiting == 0 and client.hlen("unacked") == 0


def _in_flight(worker: WorkerProcess) -> set[str]:
    """Ids of the tasks the worker logged as received but not yet as finished."""
    received, finished = set(), set()
    for task_id, what in _TASK_ID.findall(worker.output()):
        (received if what == "received" else finished).add(task_id)
    return received - finished


def _drained(client: redis.Redis, workers: list[WorkerProcess]) -> bool:
    """Nothing queued, nothing unacknowledged, nothing running — twice, a moment apart (a
    message is briefly in none of those places while a worker takes it off the queue)."""
    for attempt in range(2):
        if attempt:
            time.sleep(0.2)
        if not _queues_drained(client) or any(_in_flight(w) for w in workers):
            return False
    return True


def _wait(predicate: Callable[[], Any], what: str, workers: list[WorkerProcess]) -> None:
    try:
        wait_for(predicate, timeout=90, interval=0.3, message=what)
    except AssertionError as exc:
        logs = "\n".join(w.output()[-5000:] for w in workers)
        raise AssertionError(f"{exc}\n{logs}") from None


def _tasks_received(worker: WorkerProcess) -> Counter[str]:
    return Counter(_RECEIVED.findall(worker.output()))


def _routed_queue(task_name: str) -> str:
    return settings.CELERY_TASK_ROUTES.get(task_name, {}).get(
        "queue", settings.CELERY_TASK_DEFAULT_QUEUE
    )


class ScaleOutTests:
    def test_two_web_processes_and_workers_split_by_queue_do_nothing_twice(
        self,
        start_worker: Callable[..., WorkerProcess],
        start_web: Callable[[str], WebProcess],
        shared_env: dict[str, str],
        platform_key: str,
        admin_user: Any,
        lead: Any,
        lead2: Any,
    ) -> None:
        images = {f"img-{i}": synthetic_jpeg(3000 + i, 320, 240, quality=85) for i in range(24)}
        dup_images = {f"dup-{i}": synthetic_jpeg(4000 + i, 320, 240, quality=85) for i in range(6)}
        # Four batch images and the duplicated ones are on the known-hash list: a match locks
        # its case while a duplicate's intake, holding that case, may be inserting the item.
        known = [images[f"img-{i}"] for i in range(4)] + list(dup_images.values())
        hash_list, _ = hash_list_upsert(name=LIST_NAME, algorithm="sha256", actor=SystemActor("t"))
        imp = hash_import_create(
            hash_list=hash_list,
            filename="synthetic.csv",
            actor=SystemActor("test"),
            content="".join(f"{hashlib.sha256(d).hexdigest()},A,\n" for d in known).encode(),
        )
        hash_import_run(import_id=imp.pk)
        make_rule(
            admin_user,
            "known match",
            [{"field": "hash_list", "op": "eq", "value": LIST_NAME}],
            [{"type": "restrict_case"}],
        )
        make_rule(
            admin_user,
            "scale text",
            [{"field": "text", "op": "contains_any", "value": ["scale-out check"]}],
            [{"type": "set_priority", "priority": 1}],
        )

        # The deployment: two web containers, the hashing worker and the default worker.
        webs = [start_web("web-a"), start_web("web-b")]
        hashing = start_worker(concurrency=2, queues=WORKER_QUEUES["hashing"], **shared_env)
        default = start_worker(concurrency=2, queues=WORKER_QUEUES["default"], **shared_env)
        for web in webs:
            _wait_healthy(web)
        a, b = webs
        platform = Platform(platform_key)

        # Intake through both at once: batches, single items, and the same ids sent to both.
        def batch_of(first: int) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
            names = [f"img-{i}" for i in range(first, first + 12)]
            items = [_image_item(n, f"user-{i % 5}", part=n) for i, n in enumerate(names)]
            return items, {n: images[n] for n in names}

        shared_batch = [_text_item(f"bt-{i}", f"user-{i % 3}") for i in range(10)]
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("batch-a", lambda: platform.batch(a, *batch_of(0))),
            ("batch-b", lambda: platform.batch(b, *batch_of(12))),
            ("shared-batch-a", lambda: platform.batch(a, shared_batch, {})),
            ("shared-batch-b", lambda: platform.batch(b, shared_batch, {})),
        ]
        for i in range(6):
            item = _image_item(f"dup-{i}", f"user-{i % 4}")
            for web in webs:
                calls.append(
                    (
                        f"dup-{i}-{web.name}",
                        lambda w=web, it=item, i=i: platform.single(w, it, dup_images[f"dup-{i}"]),
                    )
                )
        for i in range(8):
            web = webs[i % 2]
            calls.append(
                (f"text-{i}", lambda w=web, i=i: platform.single(w, _text_item(f"t-{i}", "u-1")))
            )
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = {name: pool.submit(call) for name, call in calls}
            answers = {name: future.result() for name, future in futures.items()}

        # The same id sent to both web processes: one stored it (201), the other found it (200).
        for i in range(6):
            pair = [answers[f"dup-{i}-web-a"], answers[f"dup-{i}-web-b"]]
            assert sorted(status for status, _ in pair) == [200, 201], pair
            assert pair[0][1] == pair[1][1], pair
        for first, second in zip(answers["shared-batch-a"], answers["shared-batch-b"], strict=True):
            assert sorted([first[0], second[0]]) == [200, 201] and first[1] == second[1]
        for web in webs:  # both web processes took their share of intake
            served = web.requests_served()
            assert any(line.startswith("POST /api/v1/items/batch 200") for line in served)
            assert any(line.startswith("POST /api/v1/items 201") for line in served), served

        # Duplicate deliveries on purpose, as a worker crash or a sweeper would cause them.
        media_ids = sorted(Media.objects.values_list("pk", flat=True))
        for start in range(0, len(media_ids), 12):
            enqueue_on_commit("moderation.hash_media_batch", media_ids[start : start + 12])
        client = redis.Redis.from_url(require_redis())

        workers = [hashing, default]

        def drained() -> bool:
            unfinished = Media.objects.exclude(hash_status__in=("done", "failed"))
            return not unfinished.exists() and _drained(client, workers)

        _wait(drained, "the work to drain", workers)
        case_ids = sorted(Case.objects.values_list("pk", flat=True))
        enqueue_on_commit("moderation.apply_rules_batch", case_ids, "hashed")

        # A referral packet for a text case: built by the default worker, its build message
        # delivered twice.
        case = Case.objects.get(items__external_id="t-0")
        packet = packet_draft(
            cases=[case],
            destination=police(),
            priority="routine",
            summary="Synthetic scale-out test referral.",
            actor=lead,
            drafted_by=lead,
        )
        packet_submit(packet=packet, lead=lead)
        packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)
        enqueue_on_commit("reports.build_packet", packet.pk)
        _wait(
            lambda: (
                _tasks_received(default)["reports.build_packet"] == 2 and _drained(client, workers)
            ),
            "both build messages and the rules to be handled",
            workers,
        )
        packet.refresh_from_db()
        assert packet.status == "ready", (packet.error, default.output())

        # Items: once per (platform account, source, external id), each received once.
        expected_ids = {*images, *dup_images, *(f"bt-{i}" for i in range(10))}
        expected_ids |= {f"t-{i}" for i in range(8)}
        keys = Item.objects.values("platform_account", "source", "external_id")
        assert not keys.annotate(n=Count("id")).filter(n__gt=1).exists()
        assert set(Item.objects.values_list("external_id", flat=True)) == expected_ids
        received = Counter(
            AuditEvent.objects.filter(verb="item.received").values_list("object_id", flat=True)
        )
        assert len(received) == len(expected_ids) and set(received.values()) == {1}

        # Media: stored once, hashed once (one recorded result each), matched once.
        assert Media.objects.count() == len(images) + len(dup_images)
        assert set(Media.objects.values_list("hash_status", flat=True)) == {"done"}
        for verb in ("media.stored", "media.hashed"):
            events = Counter(
                AuditEvent.objects.filter(verb=verb).values_list("object_id", flat=True)
            )
            assert len(events) == Media.objects.count() and set(events.values()) == {1}, verb
        assert Match.objects.count() == len(known)
        assert AuditEvent.objects.filter(verb="match.recorded").count() == len(known)
        assert not any((Path(settings.EVIDENCE_ROOT) / "staging").iterdir())

        # Rules: each applied once per case (and version), its effect recorded once.
        applied = Counter(
            (e.object_id, e.data["rule"]) for e in AuditEvent.objects.filter(verb="rule.applied")
        )
        assert applied and set(applied.values()) == {1}
        assert len(applied) == RuleApplication.objects.count()
        matched_cases = set(Match.objects.values_list("media__item__case_id", flat=True).distinct())
        known_rule = RuleApplication.objects.filter(rule__name="known match")
        assert set(known_rule.values_list("case_id", flat=True)) == matched_cases
        for case in Case.objects.filter(pk__in=matched_cases):
            # The case keeps its last 20 reasons: the rule's may have scrolled off, never twice.
            reasons = [r for r in case.priority_reasons if "rule 'known match'" in r["reason"]]
            assert len(reasons) <= 1 and case.restricted, case.priority_reasons

        # The packet: built once, though its build message came twice.
        assert AuditEvent.objects.filter(verb="packet.built", object_id=str(packet.pk)).count() == 1
        assert packet.build_attempts == 1

        # Each task ran only on the worker serving its queue.
        hashing_tasks, default_tasks = _tasks_received(hashing), _tasks_received(default)
        assert hashing_tasks["moderation.hash_media_batch"] > 0
        assert {"moderation.apply_rules_batch", "reports.build_packet"} <= set(default_tasks)
        for name in hashing_tasks:
            assert _routed_queue(name) == "hashing", name
        for name in default_tasks:
            assert _routed_queue(name) in ("default", "packets"), name
        for worker in (hashing, default):
            assert "Traceback" not in worker.output(), worker.output()
        for web in webs:
            assert "Traceback" not in web.output(), web.output()

        # The audit chain, written by four processes at once, links and verifies.
        audit_seal()
        report = audit_verify_chain()
        assert report.ok, report
