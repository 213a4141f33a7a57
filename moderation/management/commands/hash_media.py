from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation.media.hashing import HashingError, MediaHashes
from moderation.media.validation import MediaRejected, validate_media
from moderation.services.hashing import hash_file


class Command(BaseCommand):
    help = (
        "Print the hashes the worker stores for local files (SHA-256, MD5, SHA-1, PDQ + quality, "
        "pHash, dHash). Exits non-zero if any file is refused or cannot be hashed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--json", action="store_true", help="one JSON document for all files")

    def handle(self, *args: Any, files: list[Path], json: bool, **options: Any) -> None:
        results: list[dict[str, Any]] = []
        failed = 0
        for path in files:
            try:
                sniff = validate_media(
                    path,
                    max_bytes=settings.SAFEGUARD_MAX_UPLOAD_BYTES,
                    max_pixels=settings.SAFEGUARD_MAX_PIXELS,
                )
                hashes = hash_file(path, kind=sniff.kind)
                results.append({"file": str(path), "mime": sniff.mime, **_public(hashes)})
            except (MediaRejected, HashingError, OSError) as exc:
                failed += 1
                code = getattr(exc, "code", "error")
                results.append({"file": str(path), "error": code, "message": str(exc)})
        if json:
            self.stdout.write(_json_dumps(results))
        else:
            for row in results:
                self.stdout.write(row["file"])
                for key, value in row.items():
                    if key != "file":
                        self.stdout.write(f"  {key:12} {value}")
        if failed:
            raise CommandError(f"{failed} of {len(files)} file(s) could not be hashed.")


def _public(hashes: MediaHashes) -> dict[str, Any]:
    keys = ("sha256", "md5", "sha1", "pdq", "pdq_quality", "phash", "dhash", "width", "height")
    return {k: getattr(hashes, k) for k in keys}


def _json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2)
