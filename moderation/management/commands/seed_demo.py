"""Demo users and synthetic demo data. Idempotent: a second run adds nothing.

Everything here is generated: images are gradients, shapes and noise; hash lists are random
values plus the hashes of some of those generated images. No real material, no real lists.
"""

from __future__ import annotations

import random
import secrets
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from core.audit import SystemActor
from core.roles import ADMIN, MODERATOR, SAFETY_LEAD
from moderation.media.hashing import compute_hashes
from moderation.media.synthetic import (
    synthetic_jpeg,
    synthetic_png,
    write_synthetic_gif,
    write_synthetic_video,
)
from moderation.media.video import hash_video, vpdq_format
from moderation.models import HashList, Item
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.services.intake import ItemInput, item_submit
from principles.models import HarmCategory

ACTOR = SystemActor("manage.py seed_demo")
SOURCE = "demo-platform"
DEMO_USERS = (
    ("moderator", MODERATOR),
    ("lead", SAFETY_LEAD),
    ("lead2", SAFETY_LEAD),
    ("admin", ADMIN),
)
N_ITEMS = 60
KNOWN_SEEDS = (3, 11, 19, 27)  # demo images whose hashes go into the synthetic lists
VIDEO_SEED = 5  # the generated demo videos (see _videos)

TEXTS = {
    "grooming": "Synthetic demo text: an adult account repeatedly asks a younger user to move "
    "to a private app and keep it secret.",
    "sextortion_coercion": "Synthetic demo text: account threatens to share images unless "
    "paid (demo data, no real content).",
    "procurement_advertising": "Synthetic demo text: post advertising access to a private "
    "group (demo data).",
    "search_abuse": "Synthetic demo search query placeholder (demo data).",
    "child_safety_risk": "Synthetic demo text: a user says they feel unsafe at home (demo data).",
    "not_illegal_on_face": "Synthetic demo text: comment linking to a known abuse case "
    "(demo data).",
}


class Command(BaseCommand):
    help = "Create demo users (moderator, lead, lead2, admin) and synthetic demo data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--items", type=int, default=N_ITEMS)

    def handle(self, *args: Any, items: int, **options: Any) -> None:
        password = self._users()
        self._hash_lists()
        created = self._items(items)
        created += self._videos()
        total = Item.objects.filter(source=SOURCE).count()
        self.stdout.write(
            self.style.SUCCESS(f"Demo data ready: {created} new items ({total} demo items in all).")
        )
        if password:
            self.stdout.write(f"Demo users: moderator, lead, lead2, admin — password: {password}")

    def _users(self) -> str | None:
        user_model = get_user_model()
        password = settings.SAFEGUARD_DEMO_PASSWORD or None
        generated = None
        for username, role in DEMO_USERS:
            user = user_model.objects.filter(username=username).first()
            if user is None:
                if password is None:
                    password = generated = secrets.token_urlsafe(12)
                user = user_model.objects.create_user(
                    username=username,
                    password=password,
                    email=f"{username}@example.org",
                    is_staff=(role == ADMIN),
                )
                user.groups.add(Group.objects.get(name=role))
        if settings.SAFEGUARD_DEMO_PASSWORD:
            return None
        if generated is None:
            self.stdout.write("Demo users already exist; their password is unchanged.")
        return generated

    def _hash_lists(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            rows: dict[str, list[str]] = {"pdq": [], "sha256": []}
            for seed in KNOWN_SEEDS:
                path = Path(tmp) / f"{seed}.jpg"
                path.write_bytes(self._image(seed))
                hashes = compute_hashes(path)
                rows["pdq"].append(f'{hashes.pdq},A,"{{""note"": ""synthetic demo""}}"')
                rows["sha256"].append(f"{hashes.sha256},B,")
        rng = random.Random(20261128)
        for _ in range(200):
            rows["pdq"].append(f"{rng.getrandbits(256):064x},C,")
            rows["sha256"].append(f"{rng.getrandbits(256):064x},C,")
        for algorithm, name in (
            ("pdq", "Synthetic PDQ list (demo)"),
            ("sha256", "Synthetic SHA-256 list (demo)"),
        ):
            hash_list, _ = hash_list_upsert(
                name=name,
                algorithm=algorithm,
                actor=ACTOR,
                provider=HashList.Provider.INTERNAL,
                verified=True,
            )
            if hash_list.hashes.exists():
                continue
            content = ("hash,category,metadata\n" + "\n".join(rows[algorithm]) + "\n").encode()
            imp = hash_import_create(
                hash_list=hash_list, content=content, filename=f"{algorithm}.csv", actor=ACTOR
            )
            hash_import_run(import_id=imp.pk, actor=ACTOR)

    def _videos(self) -> int:
        """Generated videos (moving shapes and noise, never real content): one whose re-encode
        is on the demo video list, one showing a listed still, one unrelated; and an animated
        GIF. So the contact sheet, a video match and a frame match show in the demo."""
        specs = [
            ("demo-video-0", dict(seed=VIDEO_SEED, width=480, height=360, crf=30, logo=True)),
            ("demo-video-1", dict(seed=VIDEO_SEED + 1)),
            ("demo-video-2", dict(seed=VIDEO_SEED + 2)),
        ]
        created = 0
        with tempfile.TemporaryDirectory() as tmp:
            listed = write_synthetic_video(Path(tmp) / "listed.mp4", VIDEO_SEED, seconds=8)
            frames = hash_video(listed).frames
            hash_list, _ = hash_list_upsert(
                name="Synthetic video list (demo)",
                algorithm="vpdq",
                actor=ACTOR,
                provider=HashList.Provider.INTERNAL,
                verified=True,
            )
            if not hash_list.hashes.exists():
                imp = hash_import_create(
                    hash_list=hash_list,
                    content=vpdq_format(frames).encode(),
                    filename="synthetic-demo-video.txt",
                    actor=ACTOR,
                    category="A",
                )
                hash_import_run(import_id=imp.pk, actor=ACTOR)
            self._listed_still(Path(tmp))
            for n, (external_id, options) in enumerate(specs):
                if Item.objects.filter(source=SOURCE, external_id=external_id).exists():
                    continue
                seed = int(options.pop("seed"))
                path = write_synthetic_video(
                    Path(tmp) / f"{external_id}.mp4", seed, seconds=8, **options
                )
                created += self._submit_media(external_id, path, "video", f"acct-v{n}", "new_csam")
            if not Item.objects.filter(source=SOURCE, external_id="demo-anim-0").exists():
                gif = write_synthetic_gif(Path(tmp) / "demo-anim-0.gif", VIDEO_SEED + 3)
                created += self._submit_media("demo-anim-0", gif, "image", "acct-v9", "new_csam")
        return created

    def _listed_still(self, tmp: Path) -> None:
        """Put one frame of demo-video-1 on the demo PDQ list: a known still inside a video."""
        still = hash_video(
            write_synthetic_video(tmp / "still-source.mp4", VIDEO_SEED + 1, seconds=8)
        ).frames[5]
        hash_list = HashList.objects.get(name="Synthetic PDQ list (demo)")
        if hash_list.hashes.filter(value=still.pdq).exists():
            return
        imp = hash_import_create(
            hash_list=hash_list,
            content=f"hash,category,metadata\n{still.pdq},A,\n".encode(),
            filename="still.csv",
            actor=ACTOR,
        )
        hash_import_run(import_id=imp.pk, actor=ACTOR)

    def _submit_media(
        self, external_id: str, path: Path, kind: str, account: str, category: str
    ) -> int:
        payload = ItemInput(
            source=SOURCE,
            external_id=external_id,
            kind=kind,
            category_hint=HarmCategory.objects.get(code=category),
            subject_account_id=account,
            subject_username=f"demo_{account}",
            visibility=Item.Visibility.PRIVATE,
            uk_linked=True,
            reporter="demo-classifier",
            note=f"Synthetic demo {kind} ({path.suffix[1:]}).",
        )
        upload = SimpleUploadedFile(path.name, path.read_bytes())
        _, created = item_submit(data=payload, upload=upload, actor=ACTOR)
        return int(created)

    @staticmethod
    def _image(seed: int) -> bytes:
        return synthetic_jpeg(seed, 640, 480, quality=85)

    def _items(self, count: int) -> int:
        categories = list(HarmCategory.objects.order_by("code"))
        now = timezone.now()
        created_count = 0
        for n in range(count):
            category = categories[n % len(categories)]
            external_id = f"demo-{n:04d}"
            if Item.objects.filter(source=SOURCE, external_id=external_id).exists():
                continue
            upload = None
            if category.code in ("known_csam", "new_csam", "livestream") or n % 7 == 0:
                kind = Item.Kind.IMAGE
                seed = KNOWN_SEEDS[n % len(KNOWN_SEEDS)] if category.code == "known_csam" else n
                data = self._image(seed) if n % 5 else synthetic_png(seed, 320, 240)
                name = f"upload-{n}.{'jpg' if n % 5 else 'png'}"
                upload = SimpleUploadedFile(
                    name, data, content_type="image/jpeg" if n % 5 else "image/png"
                )
            elif category.code == "search_abuse":
                kind = Item.Kind.TEXT
            elif category.code == "procurement_advertising":
                kind = Item.Kind.URL
            else:
                kind = Item.Kind.MESSAGE
            payload = ItemInput(
                source=SOURCE,
                external_id=external_id,
                kind=kind,
                category_hint=category,
                subject_account_id=f"acct-{n % 45:03d}",
                subject_username=f"demo_user_{n % 45}",
                subject_ip=f"2001:db8::{n % 45:x}" if n % 20 == 2 else f"192.0.2.{n % 250 + 1}",
                subject_country="GB",
                visibility=Item.Visibility.PUBLIC if n % 3 else Item.Visibility.PRIVATE,
                uk_linked=n % 4 != 0,
                occurred_at=now - timedelta(hours=n),
                reporter="demo-user-report" if n % 2 else "demo-classifier",
                note=f"Synthetic demo item {n} ({category.code}).",
                text=TEXTS.get(category.code, ""),
                url="https://example.invalid/demo/post" if kind == Item.Kind.URL else "",
                **self._subject_details(n, now),
            )
            _, created = item_submit(data=payload, upload=upload, actor=ACTOR)
            created_count += int(created)
        return created_count

    @staticmethod
    def _subject_details(n: int, now: datetime) -> dict[str, Any]:
        """Full reported-user details for a few items (every item has account, IP, country).

        All synthetic: documentation IP ranges (RFC 5737 192.0.2.0/24, RFC 3849 2001:db8::/32),
        example.org addresses and Ofcom's drama numbers (07700 900000-900999).
        """
        if n % 20 not in (1, 2):
            return {}
        user = n % 45
        return {
            "subject_port": 40000 + n,
            "subject_ip_seen_at": now - timedelta(hours=n, minutes=5),
            "subject_display_name": f"Demo User {user}",
            "subject_email": f"demo_user_{user}@example.org",
            "subject_phone": f"+44 7700 900{n % 1000:03d}",
            "subject_account_created_at": now - timedelta(days=30 + n),
            "subject_linked_accounts": [f"acct-{(n + 1) % 45:03d}", f"demo_alt_{user}"],
        }
