"""Load the 12 principles and the harm categories from principles/data/registry_v1.json."""

from django.db import migrations


def load(apps, schema_editor):
    from principles.registry import REGISTRY_V1_FILE, load_registry

    # Pinned to v1: later registry versions are loaded by later migrations (0004), whose
    # fields this historical model does not have yet.
    load_registry(apps.get_model("principles", "Principle"),
                  apps.get_model("principles", "HarmCategory"),
                  REGISTRY_V1_FILE)


class Migration(migrations.Migration):
    dependencies = [("principles", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
