from __future__ import annotations

import json
from pathlib import Path

import pytest

from principles.models import HarmCategory, Principle
from principles.registry import REGISTRY_FILE, read_registry


class RegistryFileTests:
    def test_it_holds_twelve_principles_numbered_one_to_twelve_with_sources(self) -> None:
        data = read_registry()
        assert [p["number"] for p in data["principles"]] == list(range(1, 13))
        assert all(p["source_url"].startswith("https://www.gov.uk/") for p in data["principles"])
        assert {p["number"] for p in data["principles"] if p["checked"]} == set(range(1, 8))

    def test_it_refuses_a_file_with_a_missing_principle(self, tmp_path: Path) -> None:
        data = json.loads(REGISTRY_FILE.read_text())
        data["principles"] = data["principles"][:11]
        bad = tmp_path / "registry.json"
        bad.write_text(json.dumps(data))
        with pytest.raises(ValueError, match="numbered 1-12"):
            read_registry(bad)


@pytest.mark.django_db
class RegistryMigrationTests:
    def test_the_migration_loads_principles_and_harm_categories(self) -> None:
        assert list(Principle.objects.values_list("number", flat=True)) == list(range(1, 13))
        codes = set(HarmCategory.objects.values_list("code", flat=True))
        assert {
            "known_csam",
            "new_csam",
            "grooming",
            "sextortion_coercion",
            "procurement_advertising",
            "livestream",
            "search_abuse",
            "child_safety_risk",
            "not_illegal_on_face",
        } <= codes

    def test_categories_carry_priorities_slas_and_principles(self) -> None:
        grooming = HarmCategory.objects.get(code="grooming")
        assert grooming.default_priority == 1 and grooming.sla.total_seconds() == 3600
        assert grooming.principle_numbers() == [3, 7, 12]
        assert HarmCategory.objects.get(code="known_csam").default_priority == 3
