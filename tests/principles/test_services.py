"""`registry_install`: validate a registry file, load it in one transaction, audit it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from core.audit import SystemActor
from core.models import AuditEvent
from principles.models import Principle, Provenance
from principles.registry import REGISTRY_V2_FILE, RegistryError
from principles.services import registry_install

ACTOR = SystemActor("test")


def verified_copy(tmp_path: Path) -> Path:
    """Registry v2 with principle 8 verified against the published code, as a new version."""
    data = json.loads(REGISTRY_V2_FILE.read_text(encoding="utf-8"))
    data["version"] = "2026-12-01.1"
    eight = data["principles"][7]
    eight.update(
        provenance="verified",
        checked=True,
        text="Verified wording of principle 8.",
        source_title="Interim code of practice on online child sexual exploitation and abuse",
    )
    path = tmp_path / "registry_verified.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def snapshot() -> list[tuple[Any, ...]]:
    return list(
        Principle.objects.order_by("number").values_list(
            "number", "text", "provenance", "checked", "source_title", "data_version"
        )
    )


@pytest.mark.django_db
class RegistryInstallTests:
    def test_it_installs_a_verified_version_and_writes_one_audit_event(
        self, tmp_path: Path
    ) -> None:
        path = verified_copy(tmp_path)
        before = AuditEvent.objects.count()
        result = registry_install(path=path, actor=ACTOR)
        assert (result.version, result.previous_version) == ("2026-12-01.1", "2026-11-30.1")
        eight = Principle.objects.get(number=8)
        assert (eight.provenance, eight.checked) == (Provenance.VERIFIED, True)
        assert eight.text == "Verified wording of principle 8."
        assert eight.provenance_label == "verified against the published Interim Code"
        assert set(Principle.objects.values_list("data_version", flat=True)) == {"2026-12-01.1"}
        assert AuditEvent.objects.count() == before + 1
        event = AuditEvent.objects.latest("id")
        assert (event.verb, event.actor_label) == ("principles.registry_installed", "test")
        assert (event.object_type, event.object_id) == ("principles.registry", "2026-12-01.1")
        assert event.data["version"] == "2026-12-01.1"
        assert event.data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert event.data["provenance"]["8"] == "verified"
        assert event.data["provenance"]["1"] == "voluntary_principles"
        assert event.data["provenance"]["12"] == "safeguard_summary"

    @pytest.mark.parametrize(
        ("number", "changes", "message"),
        [
            (3, {"number": 4}, "numbered 1-12"),
            (9, {"provenance": "official"}, "provenance 'official' is not one of"),
            (10, {"checked": True}, "principle 10: checked is true but provenance 'unverified'"),
        ],
    )
    def test_it_refuses_a_malformed_file_and_changes_nothing(
        self, tmp_path: Path, number: int, changes: dict[str, Any], message: str
    ) -> None:
        data = json.loads(verified_copy(tmp_path).read_text(encoding="utf-8"))
        data["principles"][number - 1].update(changes)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(data), encoding="utf-8")
        before, events = snapshot(), AuditEvent.objects.count()
        with pytest.raises(RegistryError, match=message):
            registry_install(path=bad, actor=ACTOR)
        assert snapshot() == before
        assert AuditEvent.objects.count() == events

    def test_it_refuses_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(RegistryError, match="cannot read the file"):
            registry_install(path=tmp_path / "nope.json", actor=ACTOR)
