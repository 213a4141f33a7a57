from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from core.audit import SystemActor, audit_record, audit_seal, audit_verify_chain
from core.models import AuditEvent
from principles.models import Principle
from principles.services import principle_update


def _bypass_append_only_trigger() -> None:
    """Simulate an attacker with superuser rights (who can bypass triggers) for this test."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")


@pytest.mark.django_db
class AuditTests:
    def test_a_state_change_writes_an_audit_event_in_the_same_transaction(
        self, admin_user: Any
    ) -> None:
        principle = Principle.objects.get(number=8)
        before = AuditEvent.objects.count()
        principle_update(principle=principle, actor=admin_user, checked=True)
        event = AuditEvent.objects.latest("id")
        assert AuditEvent.objects.count() == before + 1
        assert event.verb == "principle.updated"
        assert event.actor_id == admin_user.pk
        assert event.object_type == "principles.principle"
        assert event.data["changes"] == {"checked": {"from": False, "to": True}}

    def test_a_rolled_back_change_leaves_no_audit_event(self, admin_user: Any) -> None:
        before = AuditEvent.objects.count()
        with pytest.raises(RuntimeError), transaction.atomic():
            principle_update(
                principle=Principle.objects.get(number=9), actor=admin_user, checked=True
            )
            raise RuntimeError("boom")
        assert AuditEvent.objects.count() == before
        assert Principle.objects.get(number=9).checked is False

    def test_the_chain_verifies_and_names_the_first_edited_event(self) -> None:
        actor = SystemActor("test")
        events = [
            audit_record(
                actor=actor, verb="test.event", object_type="x", object_id=i, data={"i": i}
            )
            for i in range(5)
        ]
        assert audit_verify_chain().ok
        call_command("verify_audit")
        if connection.vendor == "postgresql":
            _bypass_append_only_trigger()
        AuditEvent.objects.filter(pk=events[2].pk).update(data={"i": 99})
        report = audit_verify_chain()
        assert not report.ok
        assert report.broken_at == events[2].pk
        with pytest.raises(CommandError, match=f"broken at event {events[2].pk}"):
            call_command("verify_audit")

    def test_a_deleted_event_breaks_the_link(self) -> None:
        actor = SystemActor("test")
        events = [
            audit_record(actor=actor, verb="test.event", object_type="x", object_id=i)
            for i in range(4)
        ]
        audit_seal()
        if connection.vendor == "postgresql":
            _bypass_append_only_trigger()
        AuditEvent.objects.filter(pk=events[1].pk).delete()
        report = audit_verify_chain()
        assert not report.ok and report.broken_at == events[2].pk


@pytest.mark.postgres
@pytest.mark.django_db
class AuditTriggerTests:
    def test_postgres_forbids_updating_or_deleting_audit_rows(self) -> None:
        event = audit_record(
            actor=SystemActor("test"), verb="test.event", object_type="x", object_id=1
        )
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(verb="edited")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.django_db
class AuditSealingTests:
    def test_sealing_chains_events_in_order_and_is_idempotent(self) -> None:
        actor = SystemActor("test")
        first = [
            audit_record(actor=actor, verb="a", object_type="x", object_id=i) for i in range(3)
        ]
        assert audit_seal() == 3 and audit_seal() == 0
        later = audit_record(actor=actor, verb="b", object_type="x", object_id=9)
        assert audit_seal() == 1
        later.refresh_from_db()
        first[-1].refresh_from_db()
        assert later.seq == first[-1].seq + 1 and later.prev_hash == first[-1].hash
        assert audit_verify_chain().ok

    def test_an_event_left_unsealed_too_long_is_reported(self) -> None:
        from datetime import timedelta

        event = audit_record(actor=SystemActor("t"), verb="a", object_type="x", object_id=1)
        report = audit_verify_chain(unsealed_grace=timedelta(0))
        assert not report.ok and report.broken_at == event.pk
        assert "never sealed" in report.reason
        audit_seal()
        assert audit_verify_chain(unsealed_grace=timedelta(0)).ok

    def test_verify_audit_seals_pending_events_first(self) -> None:
        from io import StringIO

        audit_record(actor=SystemActor("t"), verb="a", object_type="x", object_id=1)
        out = StringIO()
        call_command("verify_audit", stdout=out)
        assert "intact" in out.getvalue()
