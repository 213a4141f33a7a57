from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation.media.hashing import HashingError
from moderation.media.validation import MediaRejected, validate_media
from moderation.media.video import VideoError, VideoHashes, vpdq_format
from moderation.services.hashing import FileHashes, hash_file


class Command(BaseCommand):
    help = (
        "Print the hashes the worker stores for local files (SHA-256, MD5, SHA-1, PDQ + quality, "
        "pHash, dHash; for videos and animated images also the vPDQ frame hashes). Exits non-zero "
        "if any file is refused or cannot be hashed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--json", action="store_true", help="one JSON document for all files")
        parser.add_argument(
            "--format",
            choices=["text", "vpdq"],
            default="text",
            help="vpdq: write each video's frames in Meta's vpdq text format "
            "(frame,quality,pdq,timestamp), to stdout or with --out into DIR/<file>.txt",
        )
        parser.add_argument("--out", type=Path, help="with --format vpdq: a directory")

    def handle(
        self,
        *args: Any,
        files: list[Path],
        json: bool,
        format: str,
        out: Path | None,
        **options: Any,
    ) -> None:
        results: list[dict[str, Any]] = []
        failed = 0
        for path in files:
            try:
                sniff = validate_media(
                    path,
                    max_bytes=settings.SAFEGUARD_MAX_UPLOAD_BYTES,
                    max_pixels=settings.SAFEGUARD_MAX_PIXELS,
                )
                hashed = hash_file(path, kind=sniff.kind)
                if format == "vpdq":
                    self._write_vpdq(path, hashed.video, out)
                    continue
                results.append({"file": str(path), "mime": sniff.mime, **_public(hashed)})
            except (MediaRejected, HashingError, VideoError, OSError) as exc:
                failed += 1
                code = getattr(exc, "code", "error")
                results.append({"file": str(path), "error": code, "message": str(exc)})
        if format == "vpdq":
            if failed:
                raise CommandError(f"{failed} of {len(files)} file(s) could not be hashed.")
            return
        if json:
            self.stdout.write(_json_dumps(results))
        else:
            for row in results:
                self.stdout.write(row["file"])
                for key, value in row.items():
                    if key == "frames":
                        self.stdout.write(f"  {key:12} {len(value)} hashed (--json lists them)")
                    elif key != "file":
                        self.stdout.write(f"  {key:12} {value}")
        if failed:
            raise CommandError(f"{failed} of {len(files)} file(s) could not be hashed.")

    def _write_vpdq(self, path: Path, video: VideoHashes | None, out: Path | None) -> None:
        if video is None:
            raise CommandError(f"{path} is not a video or an animated image: no vpdq hash.")
        text = vpdq_format(video.frames)
        if out is None:
            self.stdout.write(text, ending="")
            return
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{path.stem}.txt").write_text(text)


def _public(hashed: FileHashes) -> dict[str, Any]:
    hashes = hashed.hashes
    keys = ("sha256", "md5", "sha1", "pdq", "pdq_quality", "phash", "dhash", "width", "height")
    row = {k: getattr(hashes, k) for k in keys}
    video = hashed.video
    if video is not None:
        row.update(
            duration=video.duration,
            size=hashed.size,
            codec=video.codec,
            frame_rate=video.frame_rate,
            frame_count=video.frame_count,
            frames=[
                {"frame": f.frame, "timestamp": f.timestamp, "quality": f.quality, "pdq": f.pdq}
                for f in video.frames
            ],
        )
    return row


def _json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2)
