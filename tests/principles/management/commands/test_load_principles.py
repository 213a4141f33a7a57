"""`manage.py load_principles FILE`: install a verified registry version, audited."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import AuditEvent
from principles.models import Principle, Provenance
from principles.registry import REGISTRY_V2_FILE
from tests.principles.test_services import snapshot, verified_copy


@pytest.mark.django_db
class LoadPrinciplesTests:
    def test_it_installs_the_file_prints_the_version_and_audits_as_the_command(
        self, tmp_path: Path
    ) -> None:
        out = StringIO()
        before = AuditEvent.objects.count()
        call_command("load_principles", str(verified_copy(tmp_path)), stdout=out)
        assert "Installed principles registry version 2026-12-01.1" in out.getvalue()
        assert " 8. verified against the published Interim Code" in out.getvalue()
        assert Principle.objects.get(number=8).provenance == Provenance.VERIFIED
        events = AuditEvent.objects.order_by("id")[before:]
        assert [(e.verb, e.actor_label) for e in events] == [
            ("principles.registry_installed", "manage.py load_principles")
        ]

    def test_it_exits_with_a_clear_message_on_a_bad_file(self, tmp_path: Path) -> None:
        data = json.loads(REGISTRY_V2_FILE.read_text(encoding="utf-8"))
        data["principles"][11].update(provenance="verified_by_us")
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(data), encoding="utf-8")
        before, events = snapshot(), AuditEvent.objects.count()
        with pytest.raises(CommandError, match=r"Registry not installed: .*principle 12"):
            call_command("load_principles", str(bad), stdout=StringIO())
        assert snapshot() == before and AuditEvent.objects.count() == events
