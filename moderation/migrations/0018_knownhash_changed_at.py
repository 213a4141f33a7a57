"""KnownHash.changed_at: when an entry last changed in a way its list's match index must follow
(issue 15 part 8: base index + delta + tombstones, instead of a full rebuild per change).

On PostgreSQL a trigger stamps it on insert and whenever the value, the withdrawal or the
low-quality flag changes — whoever writes (imports, exchange fetches, the HMA API, a lead's
review), so no writer can forget it. Existing rows get the migration's time: any index built
before this migration is rebuilt anyway (new directory layout)."""

import django.utils.timezone
from django.db import migrations, models

_TRIGGER = """
CREATE OR REPLACE FUNCTION moderation_knownhash_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.changed_at := clock_timestamp();
    ELSIF NEW.value IS DISTINCT FROM OLD.value
       OR NEW.withdrawn_at IS DISTINCT FROM OLD.withdrawn_at
       OR NEW.low_quality IS DISTINCT FROM OLD.low_quality THEN
        NEW.changed_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS moderation_knownhash_changed ON moderation_knownhash;
CREATE TRIGGER moderation_knownhash_changed
    BEFORE INSERT OR UPDATE ON moderation_knownhash
    FOR EACH ROW EXECUTE FUNCTION moderation_knownhash_changed();
"""

_DROP = """
DROP TRIGGER IF EXISTS moderation_knownhash_changed ON moderation_knownhash;
DROP FUNCTION IF EXISTS moderation_knownhash_changed();
"""


def _trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_TRIGGER)


def _untrigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_DROP)


class Migration(migrations.Migration):
    dependencies = [("moderation", "0017_item_intake_scope")]

    operations = [
        migrations.AddField(
            model_name="knownhash",
            name="changed_at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddIndex(
            model_name="knownhash",
            index=models.Index(
                fields=["hash_list", "changed_at"], name="knownhash_list_changed_idx"
            ),
        ),
        migrations.RunPython(_trigger, _untrigger),
    ]
