"""Fetching exchanges (moderation.exchanges.fetch) against the fake exchange server: paging,
checkpoints, provenance, deletions, retries, malformed pages, one worker at a time, and a
worker killed mid-fetch that resumes from its checkpoint."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from core.models import AuditEvent
from moderation.exchanges.fetch import exchange_claim, exchange_fetch, exchanges_due
from moderation.matching.banks import match_all
from moderation.models import Exchange, ExchangeEntry, ExchangeFetch, HashList, KnownHash, Match
from moderation.services.hashlists import hash_list_upsert
from tests.conftest import client_for
from tests.moderation.factories import make_item

from .conftest import ACTOR, CREDENTIALS, KEY, connect, pdq_list
from .fake_exchange import TX_TOKEN, FakeExchange, random_hex

RNG = random.Random(1130)
NOW = int(time.time())


def _stopncii(fake: FakeExchange, count: int, *, start: int = 1_700_000_000) -> list[str]:
    values = [random_hex(RNG, 64) for _ in range(count)]
    for i, value in enumerate(values):
        fake["stopncii"].add(start + i, f"pdq:{value}", hashValue=value)
    return values


def _tx(fake: FakeExchange, count: int, *, start: int = 1_700_000_000) -> list[str]:
    values = [random_hex(RNG, 64) for _ in range(count)]
    for i, value in enumerate(values):
        fake["tx"].add(start + i, value, id=i + 1, indicator=value, tags=["csam"])
    return values


def _fetch(exchange: Exchange, **kwargs: Any) -> ExchangeFetch:
    fetch = exchange_fetch(exchange_id=exchange.pk, **kwargs)
    assert fetch is not None
    exchange.refresh_from_db()
    return fetch


@pytest.mark.django_db
class PagingTests:
    def test_pages_fill_the_list_with_provenance_and_the_checkpoint_moves_with_them(
        self, fake: FakeExchange
    ) -> None:
        values = _stopncii(fake, 12)
        exchange = connect(fake, "stopncii")
        hash_list = exchange.hash_list
        assert hash_list is not None
        version = hash_list.version
        fetch = _fetch(exchange)
        assert (fetch.status, fetch.pages, fetch.records, fetch.added) == ("done", 3, 12, 12)
        assert set(KnownHash.objects.values_list("value", flat=True)) == set(values)
        entry = ExchangeEntry.objects.get(remote_id=f"pdq:{values[0]}")
        assert (entry.exchange, entry.known_hash.value, entry.deleted_at) == (
            exchange,
            values[0],
            None,
        )
        assert entry.first_seen_at == entry.last_updated_at
        assert entry.known_hash.metadata == {"exchange": exchange.name, "labels": []}
        assert exchange.state == "idle" and exchange.last_success_at is not None
        assert exchange.checkpoint is not None
        assert exchange.checkpoint["update_time"] == 1_700_000_011  # the last page's
        assert exchange.progress_at is not None and exchange.progress_at.year == 2023
        hash_list.refresh_from_db()
        assert hash_list.version == version + 1  # re-indexed once, at the end
        verbs = list(
            AuditEvent.objects.filter(object_type="moderation.exchange").values_list(
                "verb", flat=True
            )
        )
        assert verbs.count("exchange.page_applied") == 3
        assert {"exchange.fetch_started", "exchange.fetch_done"} <= set(verbs)

    def test_the_next_fetch_starts_at_the_checkpoint_and_keeps_first_seen(
        self, fake: FakeExchange
    ) -> None:
        values = _stopncii(fake, 6)
        exchange = connect(fake, "stopncii")
        _fetch(exchange)
        first_seen = ExchangeEntry.objects.get(remote_id=f"pdq:{values[0]}").first_seen_at
        feedback = [{"feedbackValue": "Blocked", "tags": ["ncii"], "source": "Example CSP"}]
        fake["stopncii"].add(
            1_700_000_100, f"pdq:{values[0]}", hashValue=values[0], CSPFeedbacks=feedback
        )
        new = _stopncii(fake, 2, start=1_700_000_200)
        fake.requests.clear()
        fetch = _fetch(exchange)
        starts = {r["query"]["startTimestamp"] for r in fake.data_requests("stopncii")}
        assert starts == {"1700000005"}  # from the checkpoint, not from the start
        assert (fetch.added, fetch.updated) == (2, 1)
        assert set(new) <= set(KnownHash.objects.values_list("value", flat=True))
        entry = ExchangeEntry.objects.get(remote_id=f"pdq:{values[0]}")
        assert entry.labels == ["ncii"] and entry.first_seen_at == first_seen
        assert entry.last_updated_at > first_seen

    def test_ncmec_routes_entries_by_classification_and_skips_other_algorithms(
        self, fake: FakeExchange
    ) -> None:
        a1, b1 = pdq_list("NCMEC A1"), pdq_list("NCMEC other")
        rows = []
        for i, (classification, prints) in enumerate(
            [
                ("A1", {"pdq": random_hex(RNG, 64), "md5": random_hex(RNG, 32)}),
                ("B1", {"pdq": random_hex(RNG, 64)}),
                ("A1", {"md5": random_hex(RNG, 32)}),  # no PDQ: nothing for a PDQ list
            ]
        ):
            rows.append(prints)
            fake["ncmec"].add(
                NOW - 3600 + i,
                f"e{i}",
                id=f"e{i}",
                classification=classification,
                fingerprints=prints,
            )
        exchange = connect(fake, "ncmec", hash_list=b1, category_lists={"A1": a1.pk})
        fetch = _fetch(exchange)
        assert (fetch.added, fetch.skipped, fetch.status) == (2, 1, "done")
        assert KnownHash.objects.get(hash_list=a1).value == rows[0]["pdq"]
        known = KnownHash.objects.get(hash_list=b1)
        assert (known.value, known.category) == (rows[1]["pdq"], "B1")
        entry = ExchangeEntry.objects.get(known_hash=known)
        assert (entry.remote_id, entry.labels, entry.category) == ("42-e1", ["B1", "esp:42"], "B1")


@pytest.mark.django_db
class DeletionTests:
    def test_a_deletion_withdraws_the_hash_and_keeps_its_matches_marked(
        self, fake: FakeExchange, moderator: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        item = make_item(kind="image", seed=1130)
        media = item.media
        md5_list, _ = hash_list_upsert(
            name="NCMEC MD5", algorithm="md5", actor=ACTOR, verified=True
        )
        fake["ncmec"].add(
            NOW - 600, "a", id="a", classification="A1", fingerprints={"md5": media.md5}
        )
        fake["ncmec"].add(
            NOW - 590, "b", id="b", classification="A2", fingerprints={"md5": random_hex(RNG, 32)}
        )
        exchange = connect(fake, "ncmec", hash_list=md5_list)
        with django_capture_on_commit_callbacks(execute=True):
            _fetch(exchange)  # new hashes: stored media are rescanned against the list
        match = Match.objects.get(media=media)
        assert match_all({"md5": media.md5})
        time.sleep(1.1)  # NCMEC is fetched up to 5 s ago: let the deletion fall after that
        checkpoint = exchange.checkpoint
        assert checkpoint is not None
        fake["ncmec"].add(checkpoint["get_entries_max_ts"], "a", id="a", deleted=True)
        fetch = _fetch(exchange)
        assert fetch.withdrawn == 1
        known = KnownHash.objects.get(value=media.md5)
        assert known.withdrawn_at is not None
        assert ExchangeEntry.objects.get(remote_id="42-a").deleted_at is not None
        assert not match_all({"md5": media.md5})  # no longer matched
        match.refresh_from_db()  # never silently erased
        page = client_for(moderator).get(f"/cases/{item.case_id}/").content.decode()
        assert "withdrawn by source" in page
        event = AuditEvent.objects.filter(verb="hash_list.withdrawn").latest("id")
        assert event.data["known_hashes"] == [known.pk]
        assert event.data["remote_ids"] == ["42-a"]

    def test_a_hash_two_entries_list_stays_until_both_are_deleted(self, fake: FakeExchange) -> None:
        value = random_hex(RNG, 64)
        state = fake["stopncii"]
        state.add(100, f"pdq:{value}", hashValue=value)
        exchange = connect(fake, "stopncii")
        other = connect(fake, "stopncii", name="Second feed", hash_list=exchange.hash_list)
        _fetch(exchange)
        _fetch(other)
        state.add(200, f"pdq:{value}", hashValue=value, hashStatus="Withdrawn")
        assert _fetch(exchange).withdrawn == 0  # the second exchange still lists it
        assert KnownHash.objects.get(value=value).withdrawn_at is None
        assert _fetch(other).withdrawn == 1
        assert KnownHash.objects.get(value=value).withdrawn_at is not None
        state.add(300, f"pdq:{value}", hashValue=value)  # listed again: restored
        assert _fetch(exchange).updated == 1
        assert KnownHash.objects.get(value=value).withdrawn_at is None


@pytest.mark.django_db
class RetryTests:
    def test_429_and_5xx_are_retried_honouring_retry_after(self, fake: FakeExchange) -> None:
        _stopncii(fake, 3)
        fake.fail_next("stopncii", 429, 503, retry_after="1")
        exchange = connect(fake, "stopncii")
        started = time.monotonic()
        fetch = _fetch(exchange)
        assert fetch.status == "done" and fetch.added == 3
        assert time.monotonic() - started >= 2  # waited Retry-After twice
        assert len(fake.data_requests("stopncii")) == 3

    def test_threatexchange_errors_resume_from_the_checkpoint(self, fake: FakeExchange) -> None:
        # The library's ThreatExchange client doesn't retry: Safeguard resumes the fetch.
        values = _tx(fake, 7)
        fake["tx"].page_size = 3
        exchange = connect(fake, "fb_threatexchange")
        _fetch(exchange, budget_seconds=0)  # one page, then a hand-over
        fake.fail_next("tx", 429, retry_after="1")
        fake.fail_next("tx", 502)
        fetch = _fetch(exchange)
        assert (fetch.status, fetch.retries, fetch.runs) == ("done", 2, 2)
        assert set(KnownHash.objects.values_list("value", flat=True)) == set(values)
        starts = [r["query"].get("start_time") for r in fake.data_requests("tx")]
        assert starts[-1] == "1700000002"  # resumed after page one

    def test_a_source_that_stays_down_makes_the_exchange_wait_then_resume(
        self, fake: FakeExchange
    ) -> None:
        values = _tx(fake, 6)
        fake["tx"].page_size = 3
        exchange = connect(fake, "fb_threatexchange")
        first = _fetch(exchange, budget_seconds=0)
        fake.fail_next("tx", 500, 500, 500, 500)
        waiting = _fetch(exchange)
        assert waiting.pk == first.pk and waiting.status == "running"
        assert exchange.state == "backoff" and exchange.next_fetch_at > timezone.now()
        assert exchange.last_error == "The source answered HTTP 500."
        assert KnownHash.objects.count() == 3  # the first page stays applied
        assert exchanges_due() == []  # not before its wait is over
        done = _fetch(exchange)
        assert done.pk == first.pk and done.status == "done" and done.runs == 3
        assert set(KnownHash.objects.values_list("value", flat=True)) == set(values)
        assert exchange.state == "idle" and exchange.failures == 0 and not exchange.last_error


@pytest.mark.django_db
class MalformedPageTests:
    @pytest.mark.parametrize(
        ("kind", "path", "body", "error"),
        [
            ("stopncii", "stopncii", b"{not json", "not valid JSON"),
            (
                "stopncii",
                "stopncii",
                b'{"count": 1, "hasMoreRecords": false, "nextSetTimestamp": 9, "hashRecords":'
                b' [{"lastModtimestamp": 9, "signalType": "ImagePDQ", "hashStatus": "Active"}]}',
                "StopNCII: record 1 of the page has no hashValue",
            ),
            ("fb_threatexchange", "tx", b'{"data": [{"id": "1"}], "paging": {}}', "KeyError"),
            ("tat", "tat", b'{"count": 1, "results": [{"nope": 1}]}', "could not be read"),
        ],
    )
    def test_a_malformed_page_is_refused_whole_with_a_clear_error(
        self, fake: FakeExchange, kind: str, path: str, body: bytes, error: str
    ) -> None:
        for i in range(4):
            value = random_hex(RNG, 64)
            if kind == "stopncii":
                fake[path].add(1_700_000_000 + i, value, hashValue=value)
            elif kind == "tat":
                fake[path].add(1_700_000_000 + i, value, id=i + 1, hash_digest=value)
            else:
                fake[path].add(1_700_000_000 + i, value, id=i + 1, indicator=value)
        fake[path].page_size = 2
        fake[path].raw[2] = body  # the second page
        exchange = connect(fake, kind)
        fetch = _fetch(exchange)
        assert fetch.status == "failed" and error in fetch.error
        assert exchange.state == "failed" and error in exchange.last_error
        assert KnownHash.objects.count() == 2  # page one applied, page two not at all
        assert fetch.pages == 1
        checkpoint = exchange.checkpoint
        del fake[path].raw[2]  # the source mends it: the next fetch resumes after page one
        fake[path].data_requests = 0
        done = _fetch(exchange)
        assert done.status == "done" and KnownHash.objects.count() == 4
        assert checkpoint is not None

    def test_a_page_with_an_invalid_hash_applies_nothing(self, fake: FakeExchange) -> None:
        fake["ncmec"].add(NOW - 60, "ok", id="ok", fingerprints={"pdq": random_hex(RNG, 64)})
        fake["ncmec"].add(NOW - 59, "bad", id="bad", fingerprints={"pdq": "zz" * 32})
        exchange = connect(fake, "ncmec")
        fetch = _fetch(exchange)
        assert fetch.status == "failed"
        assert "record '42-bad' has not a 64-character hex pdq hash" in fetch.error
        assert not KnownHash.objects.exists()
        assert exchange.checkpoint is None

    def test_refused_credentials_fail_the_fetch_with_a_clear_error(
        self, fake: FakeExchange
    ) -> None:
        _stopncii(fake, 2)
        exchange = connect(
            fake, "stopncii", credentials={**CREDENTIALS["stopncii"], "subscription_key": "wrong"}
        )
        fetch = _fetch(exchange)
        assert fetch.error == "The source refused the credentials (HTTP 401)."
        assert exchange.state == "failed"


@pytest.mark.django_db
class SecrecyTests:
    def test_credentials_never_reach_logs_errors_audit_or_pages(
        self, fake: FakeExchange, caplog: pytest.LogCaptureFixture, admin_user: Any
    ) -> None:
        caplog.set_level(logging.DEBUG)
        _tx(fake, 2)
        exchange = connect(fake, "fb_threatexchange")
        _fetch(exchange)
        fake.fail_next("tx", 500, 500, 500, 500)
        fake["tx"].add(1_800_000_000, "late", id=99, indicator=random_hex(RNG, 64))
        _fetch(exchange)
        secret = TX_TOKEN.partition("|")[2]
        assert "access_token" in caplog.text  # the URLs were logged, the token redacted
        assert secret not in caplog.text
        assert secret not in exchange.credentials  # sealed
        assert exchange.last_error
        texts = [str(e.data) for e in AuditEvent.objects.all()]
        assert not [t for t in texts if secret in t or "api_token': '" in t]
        client = client_for(admin_user)
        for url in (
            "/hash-lists/exchanges/",
            f"/hash-lists/exchanges/{exchange.pk}/",
            f"/hash-lists/exchanges/{exchange.pk}/progress",
            "/api/v1/hash-lists",
        ):
            assert secret not in client.get(url).content.decode(), url


@pytest.mark.django_db
class ClaimTests:
    def test_one_worker_at_a_time_and_an_expired_claim_is_taken_over(
        self, fake: FakeExchange
    ) -> None:
        exchange = connect(fake, "stopncii")
        now = timezone.now()
        token = exchange_claim(exchange_id=exchange.pk, now=now)
        assert token is not None
        assert exchange_claim(exchange_id=exchange.pk, now=now) is None
        assert exchange_fetch(exchange_id=exchange.pk) is None  # held: the fetch returns
        later = now + timedelta(seconds=601)
        assert exchange_claim(exchange_id=exchange.pk, now=later) not in (None, token)

    def test_beat_enqueues_due_exchanges_once(
        self, fake: FakeExchange, django_capture_on_commit_callbacks: Any
    ) -> None:
        due = connect(fake, "stopncii")
        disabled = connect(fake, "stopncii", name="Off")
        Exchange.objects.filter(pk=disabled.pk).update(enabled=False)
        with django_capture_on_commit_callbacks() as callbacks:
            assert exchanges_due() == [due.pk]
        assert len(callbacks) == 1
        assert exchanges_due() == []  # queued: not again next minute


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class CrashTests:
    def test_a_worker_killed_mid_fetch_is_resumed_from_its_checkpoint(
        self, fake: FakeExchange, repo_root: Path
    ) -> None:
        values = _stopncii(fake, 40)
        fake["stopncii"].page_size = 4
        fake.delay = 0.25
        exchange = connect(fake, "stopncii", enabled=False)  # no fetch at commit
        Exchange.objects.filter(pk=exchange.pk).update(enabled=True)
        database = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}",
            "SAFEGUARD_EXCHANGE_KEY": KEY,
            "SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS": "true",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
        }
        if database.get("PASSWORD"):
            env["PGPASSWORD"] = database["PASSWORD"]
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import django; django.setup();"
                "from moderation.exchanges.fetch import exchange_fetch;"
                f"exchange_fetch(exchange_id={exchange.pk})",
            ],
            cwd=repo_root,
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                fetch = ExchangeFetch.objects.filter(exchange=exchange).first()
                if fetch is not None and fetch.pages >= 3:
                    break
                assert worker.poll() is None, "the worker ended before it could be killed"
                time.sleep(0.05)
            worker.send_signal(signal.SIGKILL)  # no cleanup: as a worker dies
        finally:
            worker.wait(timeout=30)
        exchange.refresh_from_db()
        killed = ExchangeFetch.objects.get(exchange=exchange)
        applied = KnownHash.objects.count()
        assert 3 <= killed.pages < 10 and applied == 4 * killed.pages
        assert exchange.state == "running" and exchange.claim_token  # still held
        assert exchange_fetch(exchange_id=exchange.pk) is None  # a live claim isn't taken
        # Time passes: the dead worker's lease expires.
        Exchange.objects.filter(pk=exchange.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        resume_from = exchange.checkpoint
        assert resume_from is not None
        fake.delay = 0
        fake.requests.clear()
        fetch = _fetch(exchange)
        assert fetch.pk == killed.pk and fetch.status == "done" and fetch.runs == 2
        first = fake.data_requests("stopncii")[0]["query"]
        assert first["startTimestamp"] == str(resume_from["update_time"])
        assert sorted(KnownHash.objects.values_list("value", flat=True)) == sorted(values)
        assert ExchangeEntry.objects.count() == 40
        assert HashList.objects.get(pk=exchange.hash_list_id).version >= 2
