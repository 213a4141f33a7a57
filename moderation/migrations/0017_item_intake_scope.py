"""Idempotency per platform account: (source, external_id) is unique within the submitting
platform's namespace, not globally (issue 19)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Existing items keep their identity: an item submitted with a platform token moves into that
# platform's namespace; everything else stays in-house (NULL). The old global constraint held,
# so the new one holds for the backfilled rows.
_BACKFILL = """
UPDATE moderation_item AS i
   SET platform_account_id = i.submitted_by_id
 WHERE i.submitted_by_id IS NOT NULL
   AND EXISTS (SELECT 1 FROM core_apitoken AS t
                WHERE t.user_id = i.submitted_by_id AND t.scope = 'platform')
"""


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0006_api_token_expiry"),
        ("moderation", "0016_exchanges"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # The backfill runs last: an UPDATE of the new foreign key leaves deferred trigger events
    # pending, and PostgreSQL refuses an ALTER TABLE after them in the same transaction.
    operations = [
        migrations.RemoveConstraint(model_name="item", name="item_source_external_id"),
        migrations.AddField(
            model_name="item",
            name="platform_account",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="item",
            constraint=models.UniqueConstraint(
                fields=("source", "external_id", "platform_account"),
                name="item_scope_source_external_id",
                nulls_distinct=False,
            ),
        ),
        migrations.RunSQL(_BACKFILL, migrations.RunSQL.noop),
    ]
