"""The claim-queue trigger updates the queue entry in place before it tries an insert.

0006's trigger wrote every change as INSERT ... ON CONFLICT DO UPDATE. A claim always finds the
entry already there, and the speculative insertion (probe the arbiter index, take the
conflicting row, then update it) cost a fifth of the claim's server time: pgbench driving
moderation_claim_next at 8 clients over 1 M open cases, 5,907 -> 7,170 claims/s with this
trigger, the same as with no trigger at all (7,167/s). See benchmarks/QUEUE.md.

Why a plain INSERT and an UPDATE are enough: the trigger runs for a case row this transaction
has just written, so it holds that row's lock and nobody else can write the case's queue entry
at the same time. A new case has no entry (entries are deleted with their case). An UPDATE that
finds nothing means either the entry is missing (a decided case reopened) or it already says
the same thing (a save() that changed nothing the queue keeps); ON CONFLICT DO NOTHING covers
both without writing a row version.
"""

from importlib import import_module

from django.db import migrations

QUEUE_SYNC_SQL = """
CREATE OR REPLACE FUNCTION moderation_case_queue_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_holder integer;
    v_lease timestamptz;
BEGIN
    IF NEW.status NOT IN ('open', 'in_review') THEN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM moderation_queueentry WHERE case_id = NEW.id;
        END IF;
        RETURN NULL;
    END IF;
    IF NEW.status = 'in_review' THEN
        v_holder := NEW.claimed_by_id;
        v_lease := NEW.lease_expires_at;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        UPDATE moderation_queueentry AS q
        SET priority = NEW.priority, sla_due_at = NEW.sla_due_at, restricted = NEW.restricted,
            holder_id = v_holder, lease_expires_at = v_lease
        WHERE q.case_id = NEW.id
          AND (q.priority, q.sla_due_at, q.restricted, q.holder_id, q.lease_expires_at)
              IS DISTINCT FROM (NEW.priority, NEW.sla_due_at, NEW.restricted, v_holder, v_lease);
        IF FOUND THEN
            RETURN NULL;
        END IF;
        INSERT INTO moderation_queueentry
            (case_id, priority, sla_due_at, restricted, holder_id, lease_expires_at)
        VALUES (NEW.id, NEW.priority, NEW.sla_due_at, NEW.restricted, v_holder, v_lease)
        ON CONFLICT (case_id) DO NOTHING;
    ELSE
        INSERT INTO moderation_queueentry
            (case_id, priority, sla_due_at, restricted, holder_id, lease_expires_at)
        VALUES (NEW.id, NEW.priority, NEW.sla_due_at, NEW.restricted, v_holder, v_lease);
    END IF;
    RETURN NULL;
END
$$;
"""

# 0006's function (the part of its SQL before CREATE TRIGGER), restored on reverse.
PREVIOUS_SQL = import_module("moderation.migrations.0006_claim_queue").QUEUE_SYNC_SQL.split(
    "CREATE TRIGGER"
)[0]


def _forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(QUEUE_SYNC_SQL)


def _reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS_SQL)


class Migration(migrations.Migration):
    dependencies = [("moderation", "0006_claim_queue")]

    operations = [migrations.RunPython(_forward, _reverse)]
