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

from django.db import migrations

from moderation.sql import read_sql

QUEUE_SYNC_SQL = read_sql("0007_queue_sync")

# 0006's function (the part of its SQL before CREATE TRIGGER), restored on reverse.
PREVIOUS_SQL = read_sql("0006_queue_sync").split("CREATE TRIGGER")[0]


def _forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(QUEUE_SYNC_SQL)


def _reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS_SQL)


class Migration(migrations.Migration):
    dependencies = [("moderation", "0006_claim_queue")]

    operations = [migrations.RunPython(_forward, _reverse)]
