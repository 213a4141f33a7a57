"""`manage.py verify_packet PACKET.zip`: check a packet's files and signature offline.

Imports `reports.signing` only: it reads the zip, never the database.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports import signing


def _refuse_ambiguous_entries(archive: zipfile.ZipFile) -> None:
    """A packet whose entries could be read two ways is refused before anything is checked.

    Python's zipfile reads the *last* entry of a repeated name while common unzip tools extract
    the first (or ask), so a tampered file placed before the original would verify here and be
    what the recipient opens. Names that collide on a case-insensitive file system, and names
    that are not plain file names (folders, absolute or parent paths, backslashes, control
    characters), are refused for the same reason: a packet is a flat set of known files.
    """
    seen: dict[str, str] = {}
    for name in archive.namelist():
        if (
            not name
            or name != name.strip()
            or "/" in name
            or "\\" in name
            or name in (".", "..")
            or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E for c in name)
        ):
            raise CommandError(f"the packet holds an entry that is not a plain file name: {name!r}")
        folded = name.casefold()
        if folded in seen:
            raise CommandError(
                f"the packet holds {name!r} more than once (or names differing only in case): "
                "unzip tools could show a different file from the one verified"
            )
        seen[folded] = name


class Command(BaseCommand):
    help = (
        "Verify a referral packet: every file against manifest.json, no missing or extra "
        "files, and the Ed25519 signature over the manifest. Exits non-zero naming the problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("packet", type=Path)
        parser.add_argument(
            "--public-key",
            type=Path,
            help="PEM public key to trust (default: this installation's key)",
        )

    def handle(self, *args: Any, packet: Path, public_key: Path | None, **options: Any) -> None:
        try:
            archive = zipfile.ZipFile(packet)
        except (OSError, zipfile.BadZipFile) as exc:
            raise CommandError(f"{packet}: not a readable zip ({exc})") from None
        with archive:
            _refuse_ambiguous_entries(archive)
            names = set(archive.namelist())
            for required in ("manifest.json", "manifest.sig"):
                if required not in names:
                    raise CommandError(f"{required} is missing")
            manifest_bytes = archive.read("manifest.json")
            try:
                manifest = json.loads(manifest_bytes)
                listed: dict[str, str] = manifest["files"]
            except (ValueError, KeyError, TypeError):
                raise CommandError("manifest.json is not a valid manifest") from None
            for name, expected in sorted(listed.items()):
                if name not in names:
                    raise CommandError(f"{name} is listed in the manifest but missing")
                if hashlib.sha256(archive.read(name)).hexdigest() != expected:
                    raise CommandError(f"{name} does not match the manifest (it was changed)")
            extra = names - set(listed) - {"manifest.json", "manifest.sig"}
            if extra:
                raise CommandError(f"files not in the manifest: {', '.join(sorted(extra))}")
            pem = public_key.read_bytes() if public_key else signing.public_key_pem()
            key = signing.load_public_pem(pem)
            try:
                signature = bytes.fromhex(archive.read("manifest.sig").decode().strip())
            except ValueError:
                raise CommandError("manifest.sig is not a hex signature") from None
            if not signing.verify(key, signature, manifest_bytes):
                raise CommandError(
                    "the signature does not match manifest.json (the manifest "
                    "was changed, or the packet was signed by another key)"
                )
        self.stdout.write(
            f"OK: {manifest.get('packet')} — {len(listed)} files match the "
            f"manifest and the signature is valid."
        )
