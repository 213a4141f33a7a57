"""Registry v2 (issue #17): the same principles, each with its honest provenance.

Principles 1-7 were checked against the Voluntary Principles to Counter Online CSEA (2020), not
against the published Interim Code; 8-11 are unverified; 12 is Safeguard's summary of the
guidance's reporting duty. Reversing reloads v1 (the fields themselves go with 0003).
"""

from django.db import migrations


def _load(apps, path):
    from principles.registry import load_registry

    load_registry(apps.get_model("principles", "Principle"),
                  apps.get_model("principles", "HarmCategory"),
                  path)


def load_v2(apps, schema_editor):
    from principles.registry import REGISTRY_V2_FILE

    _load(apps, REGISTRY_V2_FILE)  # pinned: a later registry version gets its own migration


def load_v1(apps, schema_editor):
    from principles.registry import REGISTRY_V1_FILE

    _load(apps, REGISTRY_V1_FILE)


class Migration(migrations.Migration):
    dependencies = [("principles", "0003_principle_provenance_source_title")]
    operations = [migrations.RunPython(load_v2, load_v1)]
