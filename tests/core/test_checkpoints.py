"""Signed checkpoints of the audit chain (core.checkpoints) and the app's database role
(grant_app_role): what an attacker with the app's role, or with the tables' owner, can no
longer do undetected."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from core.audit import SystemActor, audit_record, audit_seal
from core.checkpoints import (
    CheckpointError,
    FileCheckpointStore,
    audit_verify_against_checkpoints,
    checkpoint_covering,
    checkpoint_parse,
    checkpoint_write,
    checkpoints_load,
)
from core.models import AuditEvent

ACTOR = SystemActor("test")


def _events(n: int, start: int = 0) -> list[AuditEvent]:
    events = [
        audit_record(actor=ACTOR, verb="test.event", object_type="x", object_id=start + i)
        for i in range(n)
    ]
    audit_seal()
    return events


def _as_owner_bypassing_the_trigger() -> None:
    """What the tables' owner (or a superuser) can do: switch the trigger off for a moment."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")


@pytest.mark.django_db
class CheckpointTests:
    def test_a_checkpoint_is_signed_written_once_and_skipped_when_nothing_is_new(
        self, settings: Any
    ) -> None:
        _events(3)
        first = checkpoint_write()
        assert first is not None and first.seq == 3
        assert checkpoint_write() is None  # the head is already checkpointed
        store = FileCheckpointStore(Path(settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR))
        (name,) = store.names()
        with pytest.raises(FileExistsError):
            store.put(name, b"{}")  # write-once
        assert checkpoints_load() == [first]
        forged = json.loads(store.get(name))
        forged["checkpoint"]["seq"] = 2
        with pytest.raises(CheckpointError, match="signature"):
            checkpoint_parse(json.dumps(forged).encode())

    def test_a_checkpoint_another_process_wrote_first_for_the_same_head_stands(
        self, settings: Any
    ) -> None:
        _events(2)
        store = FileCheckpointStore(Path(settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR))

        class RacedStore:
            """Another writer (beat, a packet build) stores the head between look and write."""

            def names(self) -> list[str]:
                return []

            def put(self, name: str, data: bytes) -> None:
                store.put(name, data)
                store.put(name, data)

            def get(self, name: str) -> bytes:
                return store.get(name)

        assert checkpoint_write(store=RacedStore()) is None
        assert [c.seq for c in checkpoints_load()] == [2]

    def test_deleting_the_last_events_is_detected_against_the_checkpoint(self) -> None:
        events = _events(5)
        checkpoint_write()
        assert audit_verify_against_checkpoints().ok
        with transaction.atomic():
            _as_owner_bypassing_the_trigger()
            AuditEvent.objects.filter(pk__in=[e.pk for e in events[3:]]).delete()
        report = audit_verify_against_checkpoints()
        assert not report.ok and "tail of the audit log was deleted" in report.reason
        with pytest.raises(CommandError, match="tail of the audit log was deleted"):
            call_command("verify_audit", stdout=StringIO())

    def test_a_backdated_insert_after_a_checkpoint_is_detected(self) -> None:
        _events(2)
        checkpoint = checkpoint_write()
        assert checkpoint is not None
        # A forged INSERT (the app's role may insert events) claiming a time before the checkpoint.
        forged = AuditEvent(
            created_at=checkpoint.at - timedelta(hours=2),
            actor_label="lead1",
            verb="media.revealed",
            object_type="moderation.media",
            object_id="1",
            data={"reason": "forged"},
        )
        forged.save(force_insert=True)
        audit_seal()  # the sealer chains it like any other event
        report = audit_verify_against_checkpoints(backdate_grace=timedelta(minutes=10))
        assert not report.ok and report.broken_at == forged.pk
        assert "behind the application's back" in report.reason

    def test_verify_since_a_checkpoint_starts_there_and_catches_a_rewrite(self) -> None:
        _events(4)
        checkpoint_write()
        _events(3, start=10)
        out = StringIO()
        call_command("verify_audit", "--since", "4", stdout=out)
        assert "intact: 3 events verified from checkpoint 4" in out.getvalue()
        with pytest.raises(CommandError, match="no checkpoint at seq 5"):
            call_command("verify_audit", "--since", "5", stdout=StringIO())
        with transaction.atomic():
            _as_owner_bypassing_the_trigger()
            AuditEvent.objects.filter(seq=4).update(hash="0" * 64)
        with pytest.raises(CommandError, match="missing or changed"):
            call_command("verify_audit", "--since", "4", stdout=StringIO())

    def test_a_packet_custody_file_gets_the_checkpoint_covering_its_events(self) -> None:
        _events(3)
        document = checkpoint_covering(3)
        assert checkpoint_parse(json.dumps(document).encode()).seq == 3
        _events(2, start=5)
        assert checkpoint_covering(3) == document  # the same one on a rebuild: deterministic


@pytest.mark.postgres
@pytest.mark.django_db
class AppRoleTests:
    ROLE = "safeguard_app_probe"

    def _as_app_role(self) -> Any:
        cursor = connection.cursor()
        cursor.execute(f"SET LOCAL ROLE {self.ROLE}")
        return cursor

    def test_the_app_role_cannot_truncate_alter_or_rewrite_the_audit_log(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [self.ROLE])
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE ROLE {self.ROLE} NOLOGIN")
        out = StringIO()
        call_command("grant_app_role", self.ROLE, stdout=out)
        assert "append-only" in out.getvalue()
        audit_record(actor=ACTOR, verb="test.event", object_type="x", object_id=1)

        def refused(statement: str, message: str) -> None:
            with pytest.raises(DatabaseError, match=message), transaction.atomic():
                self._as_app_role().execute(statement)

        refused("TRUNCATE core_auditevent", "permission denied")
        refused("ALTER TABLE core_auditevent DISABLE TRIGGER ALL", "must be owner")
        refused("DROP TRIGGER core_auditevent_append_only ON core_auditevent", "must be owner")
        refused("DELETE FROM core_auditevent WHERE verb = 'test.event'", "permission denied")
        refused(
            "UPDATE core_auditevent SET verb = 'edited' WHERE verb = 'test.event'",
            "permission denied",
        )
        refused("SET session_replication_role = replica", "permission denied")
        # What it needs still works: read, append, seal, and ordinary rows elsewhere.
        with transaction.atomic():
            cursor = self._as_app_role()
            cursor.execute("SELECT count(*) FROM core_auditevent")
            cursor.execute(
                "INSERT INTO core_auditevent (created_at, actor_label, verb, object_type, "
                "object_id, data) VALUES (now(), 'app', 'test.app', 'x', '2', '{}')"
            )
            cursor.execute(
                "UPDATE core_auditevent SET seq = 999999, prev_hash = %s, hash = %s "
                "WHERE verb = 'test.app'",
                ["0" * 64, "1" * 64],
            )
            cursor.execute("SELECT count(*) FROM principles_principle")
            transaction.set_rollback(True)

    def test_the_command_refuses_a_superuser_and_an_unknown_role(self) -> None:
        with pytest.raises(CommandError, match="superuser"):
            call_command("grant_app_role", "postgres", stdout=StringIO())
        with pytest.raises(CommandError, match="no database role"):
            call_command("grant_app_role", "no_such_role_x", stdout=StringIO())
