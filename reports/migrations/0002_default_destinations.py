"""Default destinations, all in dry-run mode until an admin sets contact details and mode."""

from django.db import migrations

DEFAULTS = [
    {"name": "NCA / CEOP", "kind": "nca_ceop", "contact_url": "https://www.ceop.police.uk/"},
    {"name": "Internet Watch Foundation", "kind": "iwf", "contact_url": "https://www.iwf.org.uk/report"},
]


def create(apps, schema_editor):
    Destination = apps.get_model("reports", "Destination")
    for row in DEFAULTS:
        Destination.objects.get_or_create(name=row["name"], defaults={**row, "mode": "dry_run"})


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
