"""Hash-list imports (moderation.services.hashlists): formats, honest outcomes, --sync
withdrawals that keep history."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from core.audit import SystemActor
from moderation.matching.banks import match_all
from moderation.models import HashImport, HashList, KnownHash, Match
from moderation.selectors import known_material_cases
from moderation.services.hashlists import (
    IMPORT_STALE_AFTER,
    HashListError,
    _import_claim,
    _import_heartbeat,
    hash_import_create,
    hash_import_run,
    hash_import_sweep_stuck,
    hash_list_upsert,
)
from moderation.tasks.hashlists import sweep_stuck_imports_task
from tests.conftest import client_for
from tests.moderation.factories import make_item, random_pdq

ACTOR = SystemActor("test")
RNG = random.Random(15)


def _import(hash_list: HashList, text: str, fmt: str = "csv", sync: bool = False) -> HashImport:
    imp = hash_import_create(
        hash_list=hash_list, content=text.encode(), filename="f", actor=ACTOR, fmt=fmt, sync=sync
    )
    result = hash_import_run(import_id=imp.pk)
    assert result is not None
    return result


def _pdq_list(**settings: Any) -> HashList:
    hash_list, _ = hash_list_upsert(name="P", algorithm="pdq", actor=ACTOR, **settings)
    return hash_list


@pytest.mark.django_db
class FormatTests:
    def test_a_signal_file_of_python_threatexchange_is_imported(self) -> None:
        a, b = random_pdq(RNG), random_pdq(RNG)
        text = f"# from an exchange\npdq {a}\n\npdq {b.upper()}\nmd5 {'0' * 32}\n"
        imp = _import(_pdq_list(), text, "signals")
        assert imp.added == 2 and imp.status == "completed_with_errors"
        assert imp.invalid == [{"line": 5, "error": "signal type 'md5' is not this list's pdq"}]
        assert set(KnownHash.objects.values_list("value", flat=True)) == {a, b}

    def test_json_lines_with_several_hashes_per_entry(self) -> None:
        a = random_pdq(RNG)
        text = (
            f'{{"pdq": "{a}", "md5": "{"1" * 32}", "category": "A", "metadata": {{"id": 7}}}}\n'
            f'{{"md5": "{"2" * 32}"}}\n'
            "not json\n"
        )
        imp = _import(_pdq_list(), text, "jsonl")
        assert imp.added == 1 and imp.invalid_count == 2
        known = KnownHash.objects.get()
        assert (known.value, known.category, known.metadata) == (a, "A", {"id": 7})
        md5, _ = hash_list_upsert(name="M", algorithm="md5", actor=ACTOR)
        assert _import(md5, text, "jsonl").added == 2  # the same file feeds an MD5 list

    def test_plain_text_metadata_is_kept_as_text(self) -> None:
        value = random_pdq(RNG)
        imp = _import(_pdq_list(), f"hash,category,metadata\n{value},B,seen in a forum\n")
        assert imp.status == "done"
        assert KnownHash.objects.get().metadata == {"text": "seen in a forum"}


@pytest.mark.django_db
class OutcomeTests:
    def test_an_import_whose_every_row_is_refused_fails_and_never_says_done(self) -> None:
        imp = _import(_pdq_list(), "not a hash,A,\nzzzz,B,{broken json\n")
        assert imp.status == "failed" and imp.error.startswith("No valid rows")
        assert imp.invalid_count == 2 and imp.added == 0

    def test_the_console_and_the_api_show_the_outcome_and_the_first_errors(
        self, admin_user: Any
    ) -> None:
        imp = _import(_pdq_list(), f"{random_pdq(RNG)},A,\nbad,A,\n")
        progress = client_for(admin_user).get(f"/hash-imports/{imp.pk}").json()
        assert progress["status_display"] == "Completed with errors"
        assert progress["first_errors"][0]["line"] == 2
        api = client_for(admin_user).get(f"/api/v1/hash-imports/{imp.pk}").json()
        assert api["status"] == "completed_with_errors" and api["invalid_count"] == 1
        page = client_for(admin_user).get("/hash-lists/").content.decode()
        assert "Completed with errors" in page and "examples/hash-list.signals.txt" in page


@pytest.mark.django_db
class SyncTests:
    def test_sync_withdraws_what_the_file_lacks_and_keeps_the_matches_in_history(
        self, moderator: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        item = make_item(kind="image", seed=41)
        media = item.media
        other = random_pdq(RNG)
        hash_list, _ = hash_list_upsert(name="S", algorithm="sha256", actor=ACTOR, verified=True)
        with django_capture_on_commit_callbacks(execute=True):
            _import(hash_list, f"{media.sha256},A,\n{other},A,\n")
        match = Match.objects.get(media=media)
        assert known_material_cases().filter(pk=item.case_id).exists()
        imp = _import(hash_list, f"{other},A,\n", sync=True)
        assert imp.withdrawn == 1 and imp.status == "done"
        hash_list.refresh_from_db()
        assert not match_all({"sha256": media.sha256})  # no longer matched
        match.refresh_from_db()  # never silently erased
        assert match.known_hash.withdrawn_at is not None
        assert not known_material_cases().filter(pk=item.case_id).exists()
        page = client_for(moderator).get(f"/cases/{item.case_id}/").content.decode()
        assert "withdrawn by source" in page
        restored = _import(hash_list, f"{media.sha256},A,\n{other},A,\n", sync=True)
        assert restored.updated == 1 and restored.withdrawn == 0
        assert KnownHash.objects.get(value=media.sha256).withdrawn_at is None
        assert match_all({"sha256": media.sha256})

    def test_a_sync_file_with_refused_rows_withdraws_nothing(self) -> None:
        hash_list = _pdq_list()
        keep = random_pdq(RNG)
        _import(hash_list, f"{keep},A,\n")
        imp = _import(hash_list, "broken,A,\n" + f"{random_pdq(RNG)},A,\n", sync=True)
        assert imp.withdrawn == 0 and imp.status == "completed_with_errors"
        assert KnownHash.objects.get(value=keep).withdrawn_at is None

    def test_the_command_takes_a_format_and_sync(self, tmp_path: Path) -> None:
        first, second = random_pdq(RNG), random_pdq(RNG)
        path = tmp_path / "list.signals"
        path.write_text(f"pdq {first}\npdq {second}\n")
        out = StringIO()
        call_command(
            "import_hashes",
            str(path),
            "--list",
            "X",
            "--algorithm",
            "pdq",
            "--format",
            "signals",
            stdout=out,
        )
        path.write_text(f"pdq {second}\n")
        call_command(
            "import_hashes",
            str(path),
            "--list",
            "X",
            "--algorithm",
            "pdq",
            "--format",
            "signals",
            "--sync",
            stdout=out,
        )
        assert "Added 0, updated 0, 0 invalid row(s), 1 withdrawn (done)." in out.getvalue()
        with pytest.raises(CommandError, match="one file"):
            call_command(
                "import_hashes",
                str(path),
                str(path),
                "--list",
                "V",
                "--algorithm",
                "vpdq",
                "--sync",
            )


@pytest.mark.django_db
class SyncSafetyTests:
    def test_a_sync_file_with_no_entries_withdraws_nothing(self) -> None:
        hash_list = _pdq_list()
        keep = random_pdq(RNG)
        _import(hash_list, f"{keep},A,\n")
        for empty in ("", "hash,category,metadata\n", "# nothing\n"):
            fmt = "signals" if empty.startswith("#") else "csv"
            imp = _import(hash_list, empty, fmt, sync=True)
            assert imp.withdrawn == 0 and imp.status == "failed", empty
        assert KnownHash.objects.get(value=keep).withdrawn_at is None

    def test_a_video_list_refuses_sync(self) -> None:
        videos, _ = hash_list_upsert(name="V", algorithm="vpdq", actor=ACTOR)
        with pytest.raises(HashListError, match="vPDQ"):
            hash_import_create(hash_list=videos, content=b"x", filename="v", actor=ACTOR, sync=True)


@pytest.mark.django_db
class VideoImportFormatTests:
    def test_a_video_import_records_the_format_its_file_is_read_as(self) -> None:
        videos, _ = hash_list_upsert(name="V", algorithm="vpdq", actor=ACTOR)
        pdq = random_pdq(RNG)
        text = f"0,100,{pdq},0.000\n1,100,{pdq},1.000\n"
        frames = [{"frame": 0, "quality": 100, "pdq": pdq, "timestamp": 0.0}]
        jsonl = json.dumps({"name": "clip", "frames": frames}) + "\n"
        for content, fmt in ((text, "vpdq"), ("\ufeff" + jsonl, "jsonl")):
            # The form's default (csv) is what arrives when nobody chose: the file decides.
            imp = hash_import_create(
                hash_list=videos, content=content.encode(), filename="v.txt", actor=ACTOR
            )
            assert imp.format == fmt
            assert hash_import_run(import_id=imp.pk).status == "done"

    def test_a_hash_list_refuses_vpdq_text(self) -> None:
        with pytest.raises(HashListError, match="vPDQ list") as caught:
            hash_import_create(
                hash_list=_pdq_list(), content=b"x", filename="v", actor=ACTOR, fmt="vpdq"
            )
        assert caught.value.field == "format"
        assert not HashImport.objects.exists()


def _running_import(*, heartbeat_age: timedelta | None) -> HashImport:
    """An import a worker claimed `heartbeat_age` ago (None: before claims had heartbeats)."""
    rows = "".join(f"{random_pdq(RNG)},A,\n" for _ in range(5))
    imp = hash_import_create(
        hash_list=_pdq_list(), content=rows.encode(), filename="f", actor=ACTOR
    )
    claimed_at = None if heartbeat_age is None else timezone.now() - heartbeat_age
    HashImport.objects.filter(pk=imp.pk).update(status="running", claimed_at=claimed_at)
    return HashImport.objects.get(pk=imp.pk)


@pytest.mark.django_db
class ImportClaimTests:
    def test_a_run_with_a_live_heartbeat_is_left_to_its_worker(self) -> None:
        imp = _running_import(heartbeat_age=timedelta(minutes=1))
        result = hash_import_run(import_id=imp.pk)
        assert result is not None and result.status == "running" and result.processed_rows == 0

    @pytest.mark.parametrize("age", [IMPORT_STALE_AFTER + timedelta(seconds=1), None])
    def test_a_run_whose_worker_died_is_claimed_again_and_rerun(
        self, age: timedelta | None
    ) -> None:
        imp = _running_import(heartbeat_age=age)
        version = imp.hash_list.version
        result = hash_import_run(import_id=imp.pk)
        assert result is not None and result.status == "done" and result.added == 5
        imp.hash_list.refresh_from_db()
        assert imp.hash_list.version == version + 1

    def test_a_run_that_lost_its_claim_stops(self) -> None:
        imp = _running_import(heartbeat_age=IMPORT_STALE_AFTER * 2)
        claim = _import_claim(imp.pk, now=timezone.now())
        assert claim is not None
        mine, _ = claim
        # Another worker re-claims it (as if this one had stalled past the stale time).
        HashImport.objects.filter(pk=imp.pk).update(claimed_at=timezone.now())
        assert not _import_heartbeat(mine, processed_rows=1)
        assert HashImport.objects.get(pk=imp.pk).processed_rows == 0

    def test_the_sweeper_hands_back_dead_and_lost_imports_only(
        self, django_capture_on_commit_callbacks: Any
    ) -> None:
        dead = _running_import(heartbeat_age=IMPORT_STALE_AFTER * 2)
        _running_import(heartbeat_age=timedelta(seconds=30))
        lost = hash_import_create(hash_list=_pdq_list(), content=b"", filename="f", actor=ACTOR)
        HashImport.objects.filter(pk=lost.pk).update(
            created_at=timezone.now() - IMPORT_STALE_AFTER * 2
        )
        assert sorted(hash_import_sweep_stuck()) == sorted([dead.pk, lost.pk])
        with django_capture_on_commit_callbacks() as callbacks:
            assert sweep_stuck_imports_task() == 2
        assert len(callbacks) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ConcurrentReclaimTests:
    """Two workers (two connections) re-claiming one stale import: exactly one wins."""

    def test_a_claim_blocked_behind_another_finds_it_taken(self) -> None:
        imp = _running_import(heartbeat_age=IMPORT_STALE_AFTER * 2)
        results: dict[str, Any] = {}
        errors: list[BaseException] = []
        first_claimed = threading.Event()
        commit_first = threading.Event()

        def first() -> None:
            try:
                with transaction.atomic():
                    results["first"] = _import_claim(imp.pk, now=timezone.now())
                    first_claimed.set()
                    # Hold the row lock until the second worker's UPDATE waits on it.
                    assert commit_first.wait(timeout=30)
            except BaseException as exc:  # noqa: BLE001 — surfaced by the assertion below
                errors.append(exc)
                first_claimed.set()
            finally:
                connections.close_all()

        def second() -> None:
            try:
                assert first_claimed.wait(timeout=30)
                results["second"] = _import_claim(imp.pk, now=timezone.now())
            except BaseException as exc:  # noqa: BLE001 — surfaced by the assertion below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        assert first_claimed.wait(timeout=30)
        deadline = time.monotonic() + 30
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break  # the second worker's UPDATE waits on the first's row lock
                time.sleep(0.02)
            else:
                pytest.fail("the second claim never reached the row lock")
        commit_first.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert results["first"] is not None and results["second"] is None
        claimed_at = HashImport.objects.values_list("claimed_at", flat=True).get(pk=imp.pk)
        assert claimed_at == results["first"][0].claimed_at
        assert connection.vendor == "postgresql"

    def test_many_sweepers_at_once_claim_a_stale_import_once(self) -> None:
        imp = _running_import(heartbeat_age=IMPORT_STALE_AFTER * 2)
        barrier = threading.Barrier(8)
        wins: list[Any] = []
        errors: list[BaseException] = []

        def sweep() -> None:
            try:
                barrier.wait(timeout=30)
                claim = _import_claim(imp.pk, now=timezone.now())
                if claim is not None:
                    wins.append(claim)
            except BaseException as exc:  # noqa: BLE001 — surfaced by the assertion below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=sweep) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert len(wins) == 1
