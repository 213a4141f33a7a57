"""Management commands: verify_packet (offline signature check) and transparency_report."""

from __future__ import annotations

import json
import warnings
import zipfile
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tests.conftest import client_for

from .factories import decide, download, ready_packet


@pytest.mark.django_db
class VerifyPacketTests:
    def test_verify_packet_accepts_a_good_packet_and_names_a_tampered_file(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        tmp_path: Path,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        good = tmp_path / "good.zip"
        good.write_bytes(download(client_for(lead), packet))
        out = StringIO()
        call_command("verify_packet", str(good), stdout=out)
        assert "OK" in out.getvalue()
        source = zipfile.ZipFile(good)
        for victim, expected in (
            ("referral.json", "referral.json does not match"),
            ("manifest.json", "signature does not match"),
        ):
            bad = tmp_path / f"bad-{victim}.zip"
            with zipfile.ZipFile(bad, "w") as out_zip:
                for name in source.namelist():
                    content = source.read(name)
                    if name == victim:
                        content = (
                            content.replace(b"RP-", b"RX-", 1)
                            if victim == "manifest.json"
                            else content.replace(b"synthetic", b"SYNTHETIC")
                        )
                    out_zip.writestr(name, content)
            with pytest.raises(CommandError, match=expected):
                call_command("verify_packet", str(bad), stdout=StringIO())

    def test_a_tampered_copy_placed_before_the_original_entry_is_refused(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        tmp_path: Path,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        """The probe's packet: a tampered referral.json first, then the original. Python's
        zipfile reads the last (which verifies); unzip tools extract the first."""
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        good = tmp_path / "good.zip"
        good.write_bytes(download(client_for(lead), packet))
        source = zipfile.ZipFile(good)
        cases = {
            "duplicate": ("referral.json", "more than once"),
            "case": ("REFERRAL.json", "more than once"),
            "path": ("../referral.json", "not a plain file name"),
            "bidi": ("referral\u202ejson.txt", "not a plain file name"),
        }
        for label, (extra_name, expected) in cases.items():
            bad = tmp_path / f"{label}.zip"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
                with zipfile.ZipFile(bad, "w") as out_zip:
                    out_zip.writestr(extra_name, b'{"forged": true}')
                    for name in source.namelist():
                        out_zip.writestr(name, source.read(name))
            with pytest.raises(CommandError, match=expected):
                call_command("verify_packet", str(bad), stdout=StringIO())


@pytest.mark.django_db
class TransparencyReportCommandTests:
    def test_the_command_prints_json_and_csv_and_refuses_bad_input(self, moderator: Any) -> None:
        decide(moderator, "grooming")
        day = timezone.now().date().isoformat()
        out = StringIO()
        call_command(
            "transparency_report", "--start", day, "--end", day, "--format", "json", stdout=out
        )
        assert json.loads(out.getvalue())["period"]["start"] == day
        out = StringIO()
        call_command(
            "transparency_report", "--start", day, "--end", day, "--format", "csv", stdout=out
        )
        assert out.getvalue().startswith("metric,value\n")
        with pytest.raises(CommandError, match="Unknown format"):
            call_command(
                "transparency_report",
                "--start",
                day,
                "--end",
                day,
                "--format",
                "xml",
                stdout=StringIO(),
            )
        with pytest.raises(CommandError, match="before it starts"):
            call_command(
                "transparency_report",
                "--start",
                "2026-02-01",
                "--end",
                "2026-01-01",
                stdout=StringIO(),
            )
