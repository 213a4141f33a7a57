"""Registry v2 (issue #17): every principle says honestly where its wording comes from."""

from __future__ import annotations

import html
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from principles.models import HarmCategory, Principle, Provenance
from principles.registry import (
    REGISTRY_FILE,
    REGISTRY_V1_FILE,
    REGISTRY_V2_FILE,
    RegistryError,
    load_registry,
    read_registry,
)
from principles.selectors import principle_labels
from tests.conftest import client_for

VOLUNTARY_PRINCIPLES_URL = (
    "https://www.gov.uk/government/publications/"
    "voluntary-principles-to-counter-online-child-sexual-exploitation-and-abuse"
)
VOLUNTARY_PRINCIPLES_TITLE = (
    "Voluntary Principles to Counter Online Child Sexual Exploitation and Abuse (2020)"
)


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class RegistryV2FileTests:
    def test_the_registry_in_use_is_v2_and_validates(self) -> None:
        assert REGISTRY_FILE == REGISTRY_V2_FILE
        data = read_registry()
        assert data["format"] == 2 and data["version"] == "2026-11-30.1"

    def test_principles_one_to_seven_are_sourced_to_the_voluntary_principles(self) -> None:
        rows = {p["number"]: p for p in read_registry()["principles"]}
        for n in range(1, 8):
            assert rows[n]["provenance"] == "voluntary_principles" and rows[n]["checked"] is True
            assert rows[n]["source_url"] == VOLUNTARY_PRINCIPLES_URL
            assert rows[n]["source_title"] == VOLUNTARY_PRINCIPLES_TITLE
        for n in range(8, 12):
            assert rows[n]["provenance"] == "unverified" and rows[n]["checked"] is False
            assert rows[n]["source_url"].endswith("/online-harms-interim-codes-of-practice")
        assert rows[12]["provenance"] == "safeguard_summary" and rows[12]["checked"] is False
        assert rows[12]["source_url"].startswith("https://www.gov.uk/guidance/child-online-safety")

    def test_it_keeps_the_texts_and_categories_of_v1(self) -> None:
        v1, v2 = read_registry(REGISTRY_V1_FILE), read_registry(REGISTRY_V2_FILE)
        for old, new in zip(v1["principles"], v2["principles"], strict=True):
            for key in ("number", "theme", "title", "text", "source_url"):
                assert old[key] == new[key]
        assert v1["harm_categories"] == v2["harm_categories"]

    def test_it_still_reads_v1_files_with_default_provenance(self) -> None:
        rows = {p["number"]: p for p in read_registry(REGISTRY_V1_FILE)["principles"]}
        assert {n for n, p in rows.items() if p["provenance"] == "voluntary_principles"} == set(
            range(1, 8)
        )
        assert {n for n, p in rows.items() if p["provenance"] == "unverified"} == set(range(8, 13))

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda d: d["principles"].reverse(), "numbered 1-12 in order"),
            (lambda d: d["principles"][2].update(number=4), "numbered 1-12 in order"),
            (
                lambda d: d["principles"][7].update(provenance="official"),
                "principle 8: provenance 'official' is not one of",
            ),
            (
                lambda d: d["principles"][7].update(checked=True),
                "principle 8: checked is true but provenance 'unverified' requires checked false",
            ),
            (
                lambda d: d["principles"][0].update(checked=False),
                "principle 1: checked is false but provenance 'voluntary_principles'",
            ),
            (lambda d: d["principles"][4].pop("source_title"), "principle 5: missing source_title"),
            (lambda d: d.update(version=""), "'version' must be a non-empty string"),
            (lambda d: d["harm_categories"][0].update(principles=[13]), "unknown principles"),
        ],
    )
    def test_it_refuses_a_malformed_file_naming_the_problem(
        self, tmp_path: Path, mutate: Any, message: str
    ) -> None:
        data = json.loads(REGISTRY_V2_FILE.read_text(encoding="utf-8"))
        mutate(data)
        with pytest.raises(RegistryError, match=message) as refused:
            read_registry(_write(tmp_path, data))
        assert str(tmp_path / "registry.json") in str(refused.value)

    def test_it_refuses_a_file_that_is_not_json(self, tmp_path: Path) -> None:
        bad = tmp_path / "registry.json"
        bad.write_text("{not json", encoding="utf-8")
        with pytest.raises(RegistryError, match="not valid JSON"):
            read_registry(bad)


def _state() -> list[tuple[Any, ...]]:
    return list(
        Principle.objects.order_by("number").values_list(
            "number", "provenance", "checked", "source_title", "data_version"
        )
    )


@pytest.mark.django_db
class RegistryV2MigrationTests:
    def test_after_migrations_each_principle_carries_its_provenance(self) -> None:
        rows = {p.number: p for p in Principle.objects.all()}
        assert {p.data_version for p in rows.values()} == {"2026-11-30.1"}
        for n in range(1, 8):
            assert (rows[n].provenance, rows[n].checked) == (Provenance.VOLUNTARY_PRINCIPLES, True)
            assert rows[n].source_title == VOLUNTARY_PRINCIPLES_TITLE
        for n in range(8, 12):
            assert (rows[n].provenance, rows[n].checked) == (Provenance.UNVERIFIED, False)
        assert (rows[12].provenance, rows[12].checked) == (Provenance.SAFEGUARD_SUMMARY, False)

    def test_the_data_migration_turns_a_v1_database_into_v2(self) -> None:
        load_registry(Principle, HarmCategory, REGISTRY_V1_FILE)
        assert Principle.objects.get(number=12).provenance == Provenance.UNVERIFIED
        migration = importlib.import_module("principles.migrations.0004_load_registry_v2")
        migration.load_v2(global_apps, None)
        assert Principle.objects.get(number=12).provenance == Provenance.SAFEGUARD_SUMMARY
        assert set(Principle.objects.values_list("data_version", flat=True)) == {"2026-11-30.1"}

    def test_the_v1_migration_still_works_with_its_historical_model(self) -> None:
        # 0002 runs before the provenance fields exist; the loader must leave them out.
        state = MigrationLoader(connection).project_state(("principles", "0002_load_registry"))
        historical = importlib.import_module("principles.migrations.0002_load_registry")
        historical.load(state.apps, None)
        assert set(Principle.objects.values_list("data_version", flat=True)) == {"2026-11-28.1"}


@pytest.mark.django_db
class PrincipleLabelsTests:
    def test_it_returns_a_short_honest_label_per_number(self) -> None:
        labels = principle_labels()
        assert list(labels) == list(range(1, 13))
        assert labels[1] == labels[7] == "checked against the Voluntary Principles (2020)"
        assert labels[8] == labels[11] == "wording unverified"
        assert labels[12] == "Safeguard's summary of the reporting duty"

    def test_a_verified_principle_is_labelled_so(self) -> None:
        Principle.objects.filter(number=8).update(provenance=Provenance.VERIFIED, checked=True)
        assert principle_labels()[8] == "verified against the published Interim Code"
        assert Principle.objects.get(number=8).provenance_label == principle_labels()[8]


@pytest.mark.django_db
class ProvenancePageTests:
    def test_the_index_shows_each_label_and_explains_the_categories(self, moderator: Any) -> None:
        page = html.unescape(client_for(moderator).get("/principles/").content.decode())
        assert "checked against the published code" not in page
        assert page.count("✔ checked against the Voluntary Principles (2020)") == 7
        assert page.count('title="Wording not yet verified against a published text"') == 4
        assert page.count("(not published text)\">Safeguard's summary of the reporting duty") == 1
        assert "not against the text of the Interim Code itself" in page
        assert VOLUNTARY_PRINCIPLES_TITLE in page

    @pytest.mark.parametrize(
        ("number", "label"),
        [
            (1, "Wording checked against the Voluntary Principles to Counter Online CSEA (2020)"),
            (9, "Wording not yet verified against a published text"),
            (12, "Safeguard's summary of the guidance's reporting duty (not published text)"),
        ],
    )
    def test_a_principle_page_shows_its_provenance(
        self, lead: Any, number: int, label: str
    ) -> None:
        page = html.unescape(client_for(lead).get(f"/principles/{number}/").content.decode())
        assert label in page
        assert "published code" not in page

    def test_the_api_reports_provenance_and_source_title(self, moderator: Any) -> None:
        body = client_for(moderator).get("/api/v1/principles").json()
        assert [p["provenance"] for p in body] == (
            ["voluntary_principles"] * 7 + ["unverified"] * 4 + ["safeguard_summary"]
        )
        assert body[0]["source_title"] == VOLUNTARY_PRINCIPLES_TITLE
