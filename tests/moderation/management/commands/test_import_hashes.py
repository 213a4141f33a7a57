"""`manage.py import_hashes`: CSV rows in, invalid ones reported by line, re-imports idempotent."""

from __future__ import annotations

import random
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from moderation.models import HashList, KnownHash
from tests.moderation.factories import random_pdq


@pytest.mark.django_db
class ImportHashesCommandTests:
    def test_it_imports_valid_rows_and_reports_invalid_ones_with_line_numbers(
        self, tmp_path: Path
    ) -> None:
        rng = random.Random(1)
        good = [random_pdq(rng) for _ in range(3)]
        csv = tmp_path / "list.csv"
        csv.write_text(
            "hash,category,metadata\n"
            f"{good[0]},A,\n"
            "nothex,B,\n"
            f'{good[1]},B,{{"note": "x"}}\n'
            f"{good[2][:-2]},C,\n"
            f'{good[2]},C,"{{not json"\n'
        )
        out, err = StringIO(), StringIO()
        call_command(
            "import_hashes",
            str(csv),
            "--list",
            "Test PDQ",
            "--algorithm",
            "pdq",
            "--threshold",
            "20",
            "--provider",
            "internal",
            stdout=out,
            stderr=err,
        )
        hl = HashList.objects.get(name="Test PDQ")
        assert hl.threshold == 20 and hl.version == 2
        assert set(hl.hashes.values_list("value", flat=True)) == {good[0], good[1]}
        assert "Added 2, updated 0, 3 invalid" in out.getvalue()
        assert "line 3:" in err.getvalue() and "line 5:" in err.getvalue()
        assert "line 6: metadata is not valid JSON" in err.getvalue()
        assert hl.hashes.get(value=good[1]).metadata == {"note": "x"}

    def test_reimporting_the_same_file_is_idempotent(self, tmp_path: Path) -> None:
        rng = random.Random(2)
        csv = tmp_path / "list.csv"
        csv.write_text("".join(f"{random_pdq(rng)},A,\n" for _ in range(50)))
        call_command(
            "import_hashes", str(csv), "--list", "L", "--algorithm", "pdq", stdout=StringIO()
        )
        version = HashList.objects.get(name="L").version
        out = StringIO()
        call_command("import_hashes", str(csv), "--list", "L", "--algorithm", "pdq", stdout=out)
        assert KnownHash.objects.count() == 50
        assert "Added 0, updated 0" in out.getvalue()
        assert HashList.objects.get(name="L").version == version  # nothing changed

    def test_a_changed_category_updates_the_row_and_bumps_the_version(self, tmp_path: Path) -> None:
        value = random_pdq(random.Random(3))
        csv = tmp_path / "a.csv"
        csv.write_text(f"{value},A,\n")
        call_command(
            "import_hashes", str(csv), "--list", "L", "--algorithm", "pdq", stdout=StringIO()
        )
        csv.write_text(f"{value},B,\n")
        out = StringIO()
        call_command("import_hashes", str(csv), "--list", "L", "--algorithm", "pdq", stdout=out)
        assert "updated 1" in out.getvalue()
        assert KnownHash.objects.get().category == "B"
        assert HashList.objects.get(name="L").version == 3

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--algorithm", "pdq", "--threshold", "40"], "out of range"),
            (["--algorithm", "sha256", "--threshold", "3"], "out of range"),
        ],
    )
    def test_it_refuses_impossible_settings(
        self, tmp_path: Path, args: list[str], message: str
    ) -> None:
        csv = tmp_path / "x.csv"
        csv.write_text("")
        with pytest.raises(CommandError, match=message):
            call_command("import_hashes", str(csv), "--list", "X", *args, stdout=StringIO())

    def test_it_refuses_a_binary_file_and_a_missing_file(self, tmp_path: Path) -> None:
        binary = tmp_path / "x.csv"
        binary.write_bytes(b"\x00\x01\x02" * 10)
        with pytest.raises(CommandError, match="not a text CSV"):
            call_command(
                "import_hashes", str(binary), "--list", "X", "--algorithm", "md5", stdout=StringIO()
            )
        with pytest.raises(CommandError, match="Cannot read"):
            call_command(
                "import_hashes",
                str(tmp_path / "missing.csv"),
                "--list",
                "X",
                "--algorithm",
                "md5",
                stdout=StringIO(),
            )
