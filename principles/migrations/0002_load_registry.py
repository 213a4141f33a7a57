"""Load the 12 principles and the harm categories from principles/data/registry_v1.json."""

from django.db import migrations


def load(apps, schema_editor):
    from principles.registry import load_registry

    load_registry(apps.get_model("principles", "Principle"),
                  apps.get_model("principles", "HarmCategory"))


class Migration(migrations.Migration):
    dependencies = [("principles", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
