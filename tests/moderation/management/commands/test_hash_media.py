"""`manage.py hash_media`: the worker's hashes for files on disk."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from moderation.media.hashing import compute_hashes
from moderation.media.synthetic import synthetic_jpeg


class HashMediaCommandTests:
    def test_it_prints_the_same_hashes_the_worker_stores(self, tmp_path: Path) -> None:
        path = tmp_path / "a.jpg"
        path.write_bytes(synthetic_jpeg(31, 640, 480))
        out = StringIO()
        call_command("hash_media", str(path), "--json", stdout=out)
        [row] = json.loads(out.getvalue())
        expected = compute_hashes(path)
        for key in ("sha256", "md5", "sha1", "pdq", "pdq_quality", "phash", "dhash"):
            assert row[key] == getattr(expected, key), key
        assert row["mime"] == "image/jpeg"

    def test_it_prints_readable_text_by_default(self, tmp_path: Path) -> None:
        path = tmp_path / "a.jpg"
        path.write_bytes(synthetic_jpeg(32, 320, 240))
        out = StringIO()
        call_command("hash_media", str(path), stdout=out)
        assert "pdq" in out.getvalue() and "sha256" in out.getvalue()

    def test_it_exits_non_zero_for_a_refused_file_and_still_reports_the_others(
        self, tmp_path: Path
    ) -> None:
        good, bad = tmp_path / "a.jpg", tmp_path / "b.jpg"
        good.write_bytes(synthetic_jpeg(33, 320, 240))
        bad.write_text("not an image")
        out = StringIO()
        with pytest.raises(CommandError, match="1 of 2"):
            call_command("hash_media", str(good), str(bad), "--json", stdout=out)
        rows = json.loads(out.getvalue())
        assert rows[1]["error"] == "unsupported_type" and "sha256" in rows[0]
