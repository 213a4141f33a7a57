"""The claim queue (moderation.services.queue): claims in queue order, leases, release,
expiry; and on PostgreSQL the trigger-kept QueueEntry index (migrations 0006, 0007), HOT
claims in one round trip, no waiting on locked rows, and the vacuum beat task.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import psycopg2
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import AuditEvent
from moderation.models import Case, QueueEntry
from moderation.services.escalations import case_mark_immediate_risk
from moderation.services.queue import (
    CaseNotHeld,
    case_claim_next,
    case_expire_leases,
    case_reassign,
    case_release,
    case_renew_lease,
    claim_statement,
    queue_vacuum,
)
from moderation.services.review import decision_record
from principles.models import HarmCategory, Priority
from tests.moderation.factories import make_open_case


def assert_queue_in_sync() -> None:
    """QueueEntry holds exactly the active cases, each with the case's own queue fields."""
    expected = {
        c.pk: (
            c.priority,
            c.sla_due_at,
            c.restricted,
            c.claimed_by_id if c.status == Case.Status.IN_REVIEW else None,
            c.lease_expires_at if c.status == Case.Status.IN_REVIEW else None,
        )
        for c in Case.objects.filter(status__in=["open", "in_review"])
    }
    actual = {
        q.case_id: (q.priority, q.sla_due_at, q.restricted, q.holder_id, q.lease_expires_at)
        for q in QueueEntry.objects.all()
    }
    assert actual == expected


@pytest.mark.django_db
class ClaimTests:
    def test_it_claims_in_queue_order_immediate_risk_then_priority_then_sla(
        self, moderator: Any
    ) -> None:
        late_p1 = make_open_case(1, timedelta(hours=2))
        early_p1 = make_open_case(1, timedelta(hours=1))
        p3 = make_open_case(3, timedelta(minutes=1))
        urgent = make_open_case(0, timedelta(hours=5))
        Case.objects.filter(pk=urgent.pk).update(immediate_risk=True)
        order = []
        for _ in range(4):
            case = case_claim_next(user=moderator)
            order.append(case.pk)
            case_release(case=case, user=moderator)
            Case.objects.filter(pk=case.pk).update(status="decided")
        assert order == [urgent.pk, early_p1.pk, late_p1.pk, p3.pk]

    def test_a_claim_sets_a_lease_and_is_audited(self, moderator: Any, settings: Any) -> None:
        settings.SAFEGUARD_LEASE_SECONDS = 600
        make_open_case(2, timedelta(hours=1))
        case = case_claim_next(user=moderator)
        assert case.status == "in_review" and case.claimed_by == moderator
        remaining = (case.lease_expires_at - timezone.now()).total_seconds()
        assert 590 < remaining <= 600
        assert AuditEvent.objects.filter(verb="case.claimed", object_id=str(case.pk)).exists()

    def test_a_moderator_who_holds_a_case_gets_it_again_instead_of_a_second(
        self, moderator: Any
    ) -> None:
        make_open_case(2, timedelta(hours=1))
        make_open_case(2, timedelta(hours=2))
        assert case_claim_next(user=moderator) == case_claim_next(user=moderator)
        assert Case.objects.filter(status="in_review").count() == 1

    def test_an_empty_queue_returns_none(self, moderator: Any) -> None:
        assert case_claim_next(user=moderator) is None

    def test_moderators_never_claim_restricted_cases_but_leads_do(
        self, moderator: Any, lead: Any
    ) -> None:
        case = make_open_case(1, timedelta(hours=1))
        Case.objects.filter(pk=case.pk).update(restricted=True)
        assert case_claim_next(user=moderator) is None
        assert case_claim_next(user=lead).pk == case.pk

    def test_renewal_extends_the_lease_and_expiry_returns_the_case(
        self, moderator: Any, moderator2: Any
    ) -> None:
        make_open_case(2, timedelta(hours=1))
        case = case_claim_next(user=moderator)
        before = case.lease_expires_at
        case_renew_lease(case=case, user=moderator)
        assert case.lease_expires_at >= before
        with pytest.raises(CaseNotHeld):
            case_renew_lease(case=case, user=moderator2)
        assert case_expire_leases(now=timezone.now() + timedelta(hours=1)) == 1
        case.refresh_from_db()
        assert case.status == "open" and case.claimed_by is None
        assert case_claim_next(user=moderator2).pk == case.pk
        with pytest.raises(CaseNotHeld):
            case_renew_lease(case=case, user=moderator)

    def test_only_the_holder_or_a_lead_can_release(
        self, moderator: Any, moderator2: Any, lead: Any
    ) -> None:
        make_open_case(2, timedelta(hours=1))
        case = case_claim_next(user=moderator)
        with pytest.raises(CaseNotHeld):
            case_release(case=case, user=moderator2)
        case_release(case=case, user=lead)
        assert Case.objects.get(pk=case.pk).status == "open"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ConcurrentClaimTests:
    def test_many_moderators_claiming_at_once_never_share_a_case_and_lose_none(self) -> None:
        group = Group.objects.get(name="Moderator")
        users = []
        for i in range(16):
            user = get_user_model().objects.create_user(f"c{i}", password="x-long-pass-123")
            user.groups.add(group)
            users.append(user)
        cases = [make_open_case(i % 5, timedelta(minutes=i)) for i in range(40)]
        claimed: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(users))

        def work(user: Any) -> None:
            try:
                barrier.wait()
                while True:
                    case = case_claim_next(user=user)
                    if case is None:
                        return
                    with lock:
                        claimed.append(case.pk)
                    # Decide-like: take it out of the queue so the claimer can claim again.
                    Case.objects.filter(pk=case.pk).update(
                        status="decided", claimed_by=None, lease_expires_at=None
                    )
            except BaseException as exc:  # noqa: BLE001 — surfaced by the assertion below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=work, args=(u,)) for u in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        counts = Counter(claimed)
        assert max(counts.values()) == 1, "a case was claimed twice"
        assert set(counts) == {c.pk for c in cases}, "a case was lost"
        assert connection.vendor == "postgresql"

    def test_the_claim_is_one_call_of_the_server_side_claim_function(self) -> None:
        user = get_user_model().objects.create_user("solo", password="x-long-pass-123")
        user.groups.add(Group.objects.get(name="Moderator"))
        make_open_case(Priority.P2, timedelta(hours=1))
        user.has_perm("moderation.view_all_cases")  # warm the permission cache
        with CaptureQueriesContext(connection) as ctx:
            case = case_claim_next(user=user)
        assert case is not None
        assert [q["sql"].split("(")[0] for q in ctx.captured_queries] == [
            "SELECT * FROM moderation_claim_next"
        ]


@pytest.mark.postgres
@pytest.mark.django_db
class QueueEntrySyncTests:
    def test_every_workflow_that_changes_a_case_keeps_the_claim_queue_in_step(
        self, moderator: Any, moderator2: Any, lead: Any
    ) -> None:
        cases = [make_open_case(i % 5, timedelta(hours=i)) for i in range(4)]
        assert_queue_in_sync()
        held = case_claim_next(user=moderator)
        assert held is not None
        assert QueueEntry.objects.get(case=held).holder_id == moderator.pk
        assert_queue_in_sync()
        case_renew_lease(case=held, user=moderator)
        assert_queue_in_sync()
        case_release(case=held, user=moderator)
        assert QueueEntry.objects.get(case=held).holder_id is None
        assert_queue_in_sync()
        case_reassign(case=cases[3], to_user=moderator2, actor=lead)
        assert_queue_in_sync()
        Case.objects.filter(pk=cases[3].pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert case_expire_leases() == 1
        assert_queue_in_sync()
        case_mark_immediate_risk(case=cases[2], actor=lead, reason="test")
        assert QueueEntry.objects.get(case=cases[2]).priority == Priority.P0
        assert_queue_in_sync()
        Case.objects.filter(pk=cases[1].pk).update(restricted=True)
        assert QueueEntry.objects.get(case=cases[1]).restricted is True
        assert_queue_in_sync()
        mine = case_claim_next(user=moderator)
        decision_record(
            case=mine,
            moderator=moderator,
            outcome="no_violation",
            categories=[],
            rationale="synthetic: nothing found",
        )
        assert not QueueEntry.objects.filter(case=mine).exists()
        assert_queue_in_sync()

    def test_a_decided_case_reopened_by_new_information_returns_to_the_claim_queue(
        self, moderator: Any, lead: Any
    ) -> None:
        make_open_case(Priority.P3, timedelta(hours=1))
        case = case_claim_next(user=moderator)
        decision_record(
            case=case,
            moderator=moderator,
            outcome="remove",
            categories=[HarmCategory.objects.first()],
            rationale="synthetic",
        )
        assert not QueueEntry.objects.filter(case=case).exists()
        case_mark_immediate_risk(case=case, actor=lead, reason="new report")
        entry = QueueEntry.objects.get(case=case)
        assert (entry.priority, entry.holder_id) == (Priority.P0, None)
        assert_queue_in_sync()

    def test_a_claim_updates_its_queue_entry_in_place_and_a_save_that_changes_nothing_writes_none(
        self, moderator: Any
    ) -> None:
        """Migration 0007: the trigger updates first, inserting only when the entry is missing;
        a save() that changes none of the queue's fields leaves the entry alone."""
        case = make_open_case(Priority.P2, timedelta(hours=1))

        def queue_writes() -> tuple[int, int]:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT pg_stat_get_xact_tuples_inserted(oid), "
                    "pg_stat_get_xact_tuples_updated(oid) FROM pg_class "
                    "WHERE relname = 'moderation_queueentry'"
                )
                return cur.fetchone()

        before = queue_writes()
        claimed = case_claim_next(user=moderator)
        assert claimed is not None and claimed.pk == case.pk
        after_claim = queue_writes()
        assert (after_claim[0] - before[0], after_claim[1] - before[1]) == (0, 1)
        claimed.save()  # every column, none of them changed
        assert queue_writes() == after_claim
        assert_queue_in_sync()


@pytest.mark.postgres
@pytest.mark.django_db
class ClaimStatementTests:
    def test_a_claim_is_one_round_trip_with_its_audit_event(self, moderator: Any) -> None:
        make_open_case(Priority.P2, timedelta(hours=1))
        moderator.has_perm("moderation.view_all_cases")  # warm the permission cache
        with CaptureQueriesContext(connection) as ctx:
            case = case_claim_next(user=moderator)
        assert case is not None and len(ctx.captured_queries) == 1
        event = AuditEvent.objects.get(verb="case.claimed", object_id=str(case.pk))
        assert (event.actor_id, event.object_type) == (moderator.pk, "moderation.case")
        assert event.data == {"lease_expires_at": case.lease_expires_at.isoformat()}

    def test_the_claimed_case_is_built_exactly_as_the_orm_would_load_it(
        self, moderator: Any
    ) -> None:
        case = make_open_case(Priority.P2, timedelta(hours=1))
        Case.objects.filter(pk=case.pk).update(priority_reasons=[{"reason": "synthetic"}])
        claimed = case_claim_next(user=moderator)
        loaded = Case.objects.get(pk=case.pk)
        fields = [f.attname for f in Case._meta.concrete_fields]
        assert {f: getattr(claimed, f) for f in fields} == {f: getattr(loaded, f) for f in fields}
        assert claimed.priority_reasons == [{"reason": "synthetic"}]
        assert claimed._state.adding is False and claimed.is_held_by(moderator)

    def test_asking_again_while_holding_returns_the_same_case_without_a_second_event(
        self, moderator: Any
    ) -> None:
        make_open_case(Priority.P2, timedelta(hours=1))
        make_open_case(Priority.P2, timedelta(hours=2))
        first = case_claim_next(user=moderator)
        again = case_claim_next(user=moderator)
        assert again is not None and first is not None and again.pk == first.pk
        assert AuditEvent.objects.filter(verb="case.claimed").count() == 1

    def test_the_claim_updates_the_case_row_in_place_a_hot_update(self, moderator: Any) -> None:
        # No index of the case table covers a column a claim changes, so PostgreSQL can write
        # the new row version on the same page without touching any index (migration 0006).
        make_open_case(Priority.P2, timedelta(hours=1))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_hot_updated('moderation_case'::regclass), "
                "pg_stat_get_xact_tuples_updated('moderation_case'::regclass)"
            )
            hot_before, upd_before = cursor.fetchone()
            assert case_claim_next(user=moderator) is not None
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_hot_updated('moderation_case'::regclass), "
                "pg_stat_get_xact_tuples_updated('moderation_case'::regclass)"
            )
            hot_after, upd_after = cursor.fetchone()
        assert (upd_after - upd_before, hot_after - hot_before) == (1, 1)

    def test_moderators_claim_through_the_unrestricted_claim_index_and_leads_the_full_one(
        self, moderator: Any, lead: Any
    ) -> None:
        make_open_case(Priority.P2, timedelta(hours=1))
        make_open_case(Priority.P2, timedelta(hours=2), subject="restricted-one")
        Case.objects.filter(subject_key__endswith="restricted-one").update(restricted=True)
        # Which index each query uses depends on what the planner knows of the tables. Two rows,
        # or statistics autovacuum took while they were empty (when depends on test order and
        # timing), rightly make it scan sequentially, so give it a queue of realistic shape:
        # 2,000 more open P4 cases, every tenth restricted (the trigger queues them), analyzed.
        # The two cases above stay at the head of the queue. Plans cached in this session are
        # dropped: they were made with other statistics. (The rows roll back with the test; the
        # table sizes ANALYZE records are written in place and outlast it, which only makes
        # later plans assume a bigger queue.)
        columns = [
            connection.ops.quote_name(f.column)
            for f in Case._meta.concrete_fields
            if f.column != "id" and not f.generated
        ]
        values = {
            '"subject_key"': "'queue-filler-' || g",
            '"priority"': str(int(Priority.P4)),
            '"restricted"': "g % 10 = 0",
            '"sla_due_at"': "sla_due_at + interval '1 day'",
        }
        source = "moderation_case, generate_series(1, 2000) AS g"
        first = "id = (SELECT min(id) FROM moderation_case)"
        into, select = ", ".join(columns), ", ".join(values.get(c, c) for c in columns)
        # Model column names and constants only, no input.
        fill = f"INSERT INTO moderation_case ({into}) SELECT {select} FROM {source} WHERE {first}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(fill)
            cursor.execute("ANALYZE moderation_case, moderation_queueentry")
            cursor.execute("DISCARD PLANS")

        def scans() -> dict[str, int]:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT indexrelname, pg_stat_get_xact_numscans(indexrelid) "
                    "FROM pg_stat_user_indexes WHERE relname = 'moderation_queueentry'"
                )
                return dict(cursor.fetchall())

        before = scans()
        assert case_claim_next(user=moderator) is not None
        after_mod = scans()
        assert case_claim_next(user=lead) is not None
        after_lead = scans()
        # (The planner may probe an index too, so "at least once" for the index in use.)
        assert after_mod["queue_claim_idx"] > before["queue_claim_idx"]
        assert after_mod["queue_claim_all_idx"] == before["queue_claim_all_idx"]
        assert after_mod["queue_holder_idx"] > before["queue_holder_idx"]
        assert after_lead["queue_claim_all_idx"] > after_mod["queue_claim_all_idx"]
        assert after_lead["queue_claim_idx"] == after_mod["queue_claim_idx"]

    def test_a_moderator_never_claims_a_case_restricted_since_the_queue_row_was_written(
        self, moderator: Any
    ) -> None:
        # The queue row is a copy; a restriction committed between a claimer's snapshot and its
        # lock is caught by re-checking the case row itself. Simulated by a stale queue row.
        case = make_open_case(Priority.P1, timedelta(hours=1))
        Case.objects.filter(pk=case.pk).update(restricted=True)
        QueueEntry.objects.filter(case=case).update(restricted=False)  # the stale copy
        assert QueueEntry.objects.get(case=case).restricted is False
        assert case_claim_next(user=moderator) is None

    def test_the_claim_function_locks_with_skip_locked(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'moderation_claim_next'")
            (source,) = cursor.fetchone()
        assert source.count("FOR UPDATE OF c SKIP LOCKED") == 2
        assert "INSERT INTO core_auditevent" in source


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ClaimLockingTests:
    def test_a_claim_skips_a_case_another_transaction_holds_instead_of_waiting(
        self, moderator: Any
    ) -> None:
        first = make_open_case(Priority.P1, timedelta(hours=1))
        second = make_open_case(Priority.P2, timedelta(hours=1))
        db = settings.DATABASES["default"]
        other = psycopg2.connect(
            dbname=connection.settings_dict["NAME"],
            user=db["USER"],
            host=db["HOST"],
            port=db["PORT"],
            password=db["PASSWORD"],
        )
        try:
            with other.cursor() as cur:  # e.g. a lead reassigning, or intake raising priority
                cur.execute("SELECT id FROM moderation_case WHERE id = %s FOR UPDATE", [first.pk])
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '2s'")  # a wait would fail, not hang
            claimed = case_claim_next(user=moderator)
            assert claimed is not None and claimed.pk == second.pk
        finally:
            other.rollback()
            other.close()
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")

    def test_claims_racing_a_lead_who_reassigns_never_deadlock(
        self, moderator: Any, lead: Any
    ) -> None:
        cases = [make_open_case(Priority.P2, timedelta(minutes=i)) for i in range(30)]
        errors: list[BaseException] = []

        def lead_reassigns() -> None:
            try:
                for case in cases:
                    with contextlib.suppress(CaseNotHeld):  # the moderator decided it first
                        case_reassign(case=case, to_user=lead, actor=lead)
            except BaseException as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=lead_reassigns)
        thread.start()
        for _ in cases:
            case = case_claim_next(user=moderator)
            if case is None:
                break
            Case.objects.filter(pk=case.pk).update(status="decided", claimed_by=None)
        thread.join(timeout=60)
        assert not errors, errors
        assert_queue_in_sync()

    def test_only_a_claim_that_is_its_own_transaction_commits_asynchronously(
        self, moderator: Any
    ) -> None:
        make_open_case(Priority.P2, timedelta(hours=1))
        make_open_case(Priority.P2, timedelta(hours=2))
        assert claim_statement(user=moderator)[1][-1] is True  # autocommit: its own transaction
        with transaction.atomic(), connection.cursor() as cursor:
            # Inside a caller's transaction: the caller's other writes stay synchronous.
            sql, params = claim_statement(user=moderator)
            assert params[-1] is False
            cursor.execute(sql, params)
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
            transaction.set_rollback(True)
        with transaction.atomic(), connection.cursor() as cursor:
            # The flag, when set, reaches only the claim's own transaction.
            sql, params = claim_statement(user=moderator)
            cursor.execute(sql, [*params[:-1], True])
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "off"
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class QueueVacuumTests:
    def test_queue_vacuum_runs_outside_a_transaction_and_is_on_beat(self) -> None:
        names = ("vacuum_cost_delay", "vacuum_cost_limit", "vacuum_cost_page_dirty")

        def current() -> list[str]:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT setting FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
                    [list(names)],
                )
                return [r[0] for r in cursor.fetchall()]

        before = current()
        assert len(before) == len(names)
        with CaptureQueriesContext(connection) as ctx:
            assert queue_vacuum() is True
        vacuum = next(q["sql"] for q in ctx.captured_queries if q["sql"].startswith("VACUUM"))
        # one process, paced by pages whatever their state: claims keep the cores while it
        # runs (benchmarks/QUEUE.md)
        assert "PARALLEL 0" in vacuum
        sets = " ".join(q["sql"] for q in ctx.captured_queries if "set_config" in q["sql"])
        for name in ("vacuum_cost_page_hit", "vacuum_cost_page_miss", "vacuum_cost_page_dirty"):
            assert f"'{name}', '1'" in sets
        assert "'vacuum_cost_delay', '5.0ms'" in sets
        assert "'vacuum_cost_limit', '100'" in sets
        assert current() == before  # the pace is the vacuum's only
        schedule = {v["task"]: v["schedule"] for v in settings.CELERY_BEAT_SCHEDULE.values()}
        assert schedule["moderation.vacuum_queue"] <= timedelta(seconds=10)
