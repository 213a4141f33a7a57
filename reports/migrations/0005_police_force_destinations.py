"""Every UK police force a lead may refer to, as a dry-run destination (force list v1), and
stable codes for the default NCA/CEOP and IWF destinations.

Police forces stay in dry run until an admin records their contact route (portal, email or
phone). Destinations created earlier for a force (by a 999 call's follow-up) get its code.
"""

import json
from pathlib import Path

from django.db import migrations

FORCES_FILE = Path(__file__).resolve().parents[2] / "moderation" / "data" / "uk_police_forces.json"


def forward(apps, schema_editor):
    Destination = apps.get_model("reports", "Destination")
    Destination.objects.filter(kind="nca_ceop", name="NCA / CEOP", code="").update(code="nca")
    Destination.objects.filter(kind="iwf", name="Internet Watch Foundation", code="").update(
        code="iwf"
    )
    forces = json.loads(FORCES_FILE.read_text(encoding="utf-8"))["forces"]
    for force in forces:
        existing = Destination.objects.filter(kind="police", police_force=force["name"]).first()
        if existing is not None:
            if not existing.code:
                existing.code = force["code"]
                existing.save(update_fields=["code"])
            continue
        Destination.objects.get_or_create(
            code=force["code"],
            defaults={
                "name": force["name"],
                "kind": "police",
                "police_force": force["name"],
                "mode": "dry_run",
            },
        )


class Migration(migrations.Migration):
    dependencies = [("reports", "0004_referral_recipients")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
