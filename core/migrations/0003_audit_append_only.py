"""On PostgreSQL, forbid UPDATE and DELETE of audit rows at the database level.

Even a compromised application account cannot rewrite history without dropping the trigger,
which needs the table owner's rights. (TRUNCATE, used by test teardown, is not row-level and is
left to the database's privileges.)
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION safeguard_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'core_auditevent is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER core_auditevent_append_only
  BEFORE UPDATE OR DELETE ON core_auditevent
  FOR EACH ROW EXECUTE FUNCTION safeguard_audit_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS core_auditevent_append_only ON core_auditevent;
DROP FUNCTION IF EXISTS safeguard_audit_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("core", "0002_roles")]
    operations = [migrations.RunPython(forward, backward)]
