"""Claiming: one statement with SKIP LOCKED on PostgreSQL, leases, release, expiry."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, connections
from django.utils import timezone

from core.models import AuditEvent
from moderation.models import Case
from moderation.queue import (
    CaseNotHeld,
    case_claim_next,
    case_expire_leases,
    case_release,
    case_renew_lease,
)
from principles.models import Priority
from tests.moderation.factories import make_case


def _open_case(priority: int, due_in: timedelta, **kwargs: Any) -> Case:
    case = make_case(kind="text", **kwargs)
    Case.objects.filter(pk=case.pk).update(
        priority=priority, sla_due_at=timezone.now() + due_in, category=None
    )
    return Case.objects.get(pk=case.pk)


@pytest.mark.django_db
class ClaimTests:
    def test_it_claims_in_queue_order_immediate_risk_then_priority_then_sla(
        self, moderator: Any
    ) -> None:
        late_p1 = _open_case(1, timedelta(hours=2))
        early_p1 = _open_case(1, timedelta(hours=1))
        p3 = _open_case(3, timedelta(minutes=1))
        urgent = _open_case(0, timedelta(hours=5))
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
        _open_case(2, timedelta(hours=1))
        case = case_claim_next(user=moderator)
        assert case.status == "in_review" and case.claimed_by == moderator
        remaining = (case.lease_expires_at - timezone.now()).total_seconds()
        assert 590 < remaining <= 600
        assert AuditEvent.objects.filter(verb="case.claimed", object_id=str(case.pk)).exists()

    def test_a_moderator_who_holds_a_case_gets_it_again_instead_of_a_second(
        self, moderator: Any
    ) -> None:
        _open_case(2, timedelta(hours=1))
        _open_case(2, timedelta(hours=2))
        assert case_claim_next(user=moderator) == case_claim_next(user=moderator)
        assert Case.objects.filter(status="in_review").count() == 1

    def test_an_empty_queue_returns_none(self, moderator: Any) -> None:
        assert case_claim_next(user=moderator) is None

    def test_moderators_never_claim_restricted_cases_but_leads_do(
        self, moderator: Any, lead: Any
    ) -> None:
        case = _open_case(1, timedelta(hours=1))
        Case.objects.filter(pk=case.pk).update(restricted=True)
        assert case_claim_next(user=moderator) is None
        assert case_claim_next(user=lead).pk == case.pk

    def test_renewal_extends_the_lease_and_expiry_returns_the_case(
        self, moderator: Any, moderator2: Any
    ) -> None:
        _open_case(2, timedelta(hours=1))
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
        _open_case(2, timedelta(hours=1))
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
        cases = [_open_case(i % 5, timedelta(minutes=i)) for i in range(40)]
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
        from django.test.utils import CaptureQueriesContext

        user = get_user_model().objects.create_user("solo", password="x-long-pass-123")
        user.groups.add(Group.objects.get(name="Moderator"))
        _open_case(Priority.P2, timedelta(hours=1))
        user.has_perm("moderation.view_all_cases")  # warm the permission cache
        with CaptureQueriesContext(connection) as ctx:
            case = case_claim_next(user=user)
        assert case is not None
        assert [q["sql"].split("(")[0] for q in ctx.captured_queries] == [
            "SELECT * FROM moderation_claim_next"
        ]
