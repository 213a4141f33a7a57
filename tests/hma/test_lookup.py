"""Lookups keep the semantics of intake matching: per-list thresholds, the quality gate, the
dihedral switch, quarantine and withdrawal, disabled lists; and the same media gets the same
matches from POST /m/lookup as from GET /api/v1/items/{id}."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rest_framework.test import APIClient

from core.audit import SystemActor
from hma.lookup import coinflip, signal_lookup
from hma.selectors import searchable_lists_clear
from hma.signal_types import SIGNAL_TYPES
from moderation.media.hashing import compute_hashes
from moderation.media.synthetic import encode, synthetic_image, write_synthetic_video
from moderation.media.video import hash_video, vpdq_format
from moderation.models import HashList, KnownHash
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.services.quarantine import known_hash_quarantine
from tests.hma.factories import add_signals, create_bank, flip, pdq, upload

ACTOR = SystemActor("test")


def _list(name: str, algorithm: str, rows: list[str], **settings: Any) -> HashList:
    """A Safeguard list filled by an import, as an admin's CSV would (outside any HMA bank)."""
    hash_list, _ = hash_list_upsert(name=name, algorithm=algorithm, actor=ACTOR, **settings)
    imp = hash_import_create(
        hash_list=hash_list,
        content="".join(f"{row}\n" for row in rows).encode(),
        filename=f"{name}.csv",
        actor=ACTOR,
    )
    hash_import_run(import_id=imp.pk)
    hash_list.refresh_from_db()
    return hash_list


def _png(seed: int, transform: Image.Transpose | None = None) -> bytes:
    """A synthetic photo-like PNG; the seeds used have a PDQ quality above 50."""
    image = synthetic_image(seed, 400, 300)
    return encode(image.transpose(transform) if transform is not None else image, "PNG")


def _provenance(body: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(list, algorithm, distance) of every match of a POST /m/lookup answer."""
    return {
        (m["provenance"]["list"], m["algorithm"], m["distance"])
        for signal_type, banks in body.items()
        if signal_type != "safeguard_notes"
        for matches in banks.values()
        for m in matches
    }


@pytest.mark.django_db
class ConsistencyWithItemsTests:
    def test_an_upload_gets_the_matches_intake_records_for_the_same_media(
        self,
        tmp_path: Path,
        platform_client: APIClient,
        admin_client: APIClient,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        data = _png(24)
        path = tmp_path / "a.png"
        path.write_bytes(data)
        hashes = compute_hashes(path)
        rotated = tmp_path / "r.png"
        rotated.write_bytes(_png(24, Image.Transpose.ROTATE_90))
        _list("IWF", "pdq", [f"{flip(hashes.pdq, 5)},A", f"{pdq(1)},B"])
        _list("EXACT", "sha256", [f"{hashes.sha256},A"])
        _list("MD5S", "md5", [f"{hashes.md5},C"])
        _list("PHASHES", "phash", [f"{hashes.phash},B"])
        _list("FAR", "pdq", [f"{flip(hashes.pdq, 12)},A"], threshold=10)  # beyond its threshold
        quarantined = _list("Q", "dhash", [f"{hashes.dhash},A"])
        known_hash_quarantine(
            known_hash_id=quarantined.hashes.get().pk, reason="3 false positives", actor=ACTOR
        )
        create_bank(admin_client, "TURNED")
        add_signals(admin_client, "TURNED", {"pdq": compute_hashes(rotated).pdq})

        with django_capture_on_commit_callbacks(execute=True):
            created = platform_client.post(
                "/api/v1/items",
                {
                    "source": "hma",
                    "external_id": "a",
                    "kind": "image",
                    "media": upload("m", data)["m"],
                },
                format="multipart",
            )
        assert created.status_code == 201, created.content
        item = platform_client.get(f"/api/v1/items/{created.json()['id']}").json()
        from_items = {(m["list"], m["algorithm"], str(m["distance"])) for m in item["matches"]}

        lookup = platform_client.post("/m/lookup?notes=true", upload("photo", data))
        assert lookup.status_code == 200, lookup.content
        body = lookup.json()
        from_lookup = _provenance(body)

        assert from_lookup == from_items - {("Q", "dhash", "0")}
        assert {lst for lst, _, _ in from_lookup} == {
            "IWF",
            "EXACT",
            "MD5S",
            "PHASHES",
            "TURNED (pdq)",
        }
        turned = body["pdq"]["TURNED"][0]
        assert turned["transform"] == "rotate270"  # the upload is the listed image turned back
        iwf = body["pdq"]["IWF"][0]
        assert iwf["category"] == "A" and iwf["provider"] == "internal"
        assert iwf["distance"] == "5"
        [note] = [n for n in body["safeguard_notes"] if n["list"] == "Q"]
        assert note["note"].startswith("quarantined") and note["bank"] == "Q"


@pytest.mark.django_db
class QualityGateAndDihedralTests:
    def test_a_degenerate_hash_is_not_matched_perceptually(self) -> None:
        flat = "0" * 64
        _list("P", "pdq", [f"{flat},A"], match_low_quality=True)
        st = SIGNAL_TYPES["pdq"]
        result = signal_lookup(signal_type=st, value=flat)
        assert result.matches == []
        assert "below the list's floor" in result.notes[0]["note"]
        # A list that floors at 0 is searched, as intake searches it for a flat image.
        hash_list_upsert(name="P", algorithm="pdq", actor=ACTOR, min_quality=0)
        assert [m.hash_list.name for m in signal_lookup(signal_type=st, value=flat).matches] == [
            "P"
        ]

    def test_a_stated_quality_below_the_floor_skips_the_list(
        self, platform_client: APIClient
    ) -> None:
        value = pdq(50)
        _list("P", "pdq", [f"{value},A"])
        low = platform_client.get(
            "/m/raw_lookup", {"signal_type": "pdq", "signal": value, "quality": 20}
        )
        assert low.json() == {"matches": []}
        fine = platform_client.get(
            "/m/raw_lookup", {"signal_type": "pdq", "signal": value, "quality": 80}
        )
        assert len(fine.json()["matches"]) == 1

    def test_a_rotated_copy_matches_as_an_upload_but_not_as_a_bare_hash(
        self, tmp_path: Path, platform_client: APIClient
    ) -> None:
        path = tmp_path / "o.png"
        path.write_bytes(_png(25))
        _list("P", "pdq", [f"{compute_hashes(path).pdq},A"])
        turned = _png(25, Image.Transpose.ROTATE_180)
        matched = platform_client.post("/m/lookup?types=pdq", upload("photo", turned)).json()
        assert matched["pdq"]["P"][0]["transform"] == "rotate180"
        (tmp_path / "t.png").write_bytes(turned)
        bare = compute_hashes(tmp_path / "t.png").pdq
        notes = platform_client.get(
            "/m/lookup", {"signal_type": "pdq", "signal": bare, "notes": "true"}
        ).json()
        assert "P" not in notes
        assert "uploads only" in notes["safeguard_notes"][0]["note"]

    def test_the_dihedral_switch_off_matches_no_rotated_upload(
        self, tmp_path: Path, platform_client: APIClient
    ) -> None:
        path = tmp_path / "o.png"
        path.write_bytes(_png(31))
        _list("P", "pdq", [f"{compute_hashes(path).pdq},A"], match_dihedral=False)
        turned = _png(31, Image.Transpose.ROTATE_90)
        assert platform_client.post("/m/lookup?types=pdq", upload("photo", turned)).json() == {
            "pdq": {}
        }


@pytest.mark.django_db
class ListStateTests:
    def test_withdrawn_quarantined_and_disabled_entries_are_not_matches(
        self, admin_client: APIClient, platform_client: APIClient
    ) -> None:
        value = pdq(60)
        create_bank(admin_client, "STATE")
        content_id = add_signals(admin_client, "STATE", {"pdq": value})["id"]
        query = {"signal_type": "pdq", "signal": value}
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": [content_id]}

        known_hash_quarantine(known_hash_id=content_id, reason="flood", actor=ACTOR)
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": []}
        content = admin_client.get(f"/c/bank/STATE/content/{content_id}").json()
        assert content["quarantined"] is True and content["disable_until_ts"] == 0
        KnownHash.objects.filter(pk=content_id).update(quarantined_at=None)
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": [content_id]}

        admin_client.put("/c/bank/STATE", {"enabled": False}, format="json")
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": []}
        admin_client.put("/c/bank/STATE", {"enabled": True}, format="json")
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": [content_id]}

        admin_client.delete(f"/c/bank/STATE/content/{content_id}")
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": []}
        # Added again: the same entry comes back (restored), and matches again.
        assert add_signals(admin_client, "STATE", {"pdq": value})["id"] == content_id
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": [content_id]}

    def test_an_entry_withdrawn_by_a_sync_import_stops_matching(
        self, platform_client: APIClient
    ) -> None:
        kept, dropped = pdq(61), pdq(62)
        hash_list = _list("SYNCED", "pdq", [f"{kept},A", f"{dropped},A"])
        imp = hash_import_create(
            hash_list=hash_list,
            content=f"{kept},A\n".encode(),
            filename="s.csv",
            actor=ACTOR,
            sync=True,
        )
        hash_import_run(import_id=imp.pk)
        assert platform_client.get(
            "/m/raw_lookup", {"signal_type": "pdq", "signal": dropped}
        ).json() == {"matches": []}
        assert (
            len(
                platform_client.get("/m/raw_lookup", {"signal_type": "pdq", "signal": kept}).json()[
                    "matches"
                ]
            )
            == 1
        )

    def test_each_list_keeps_its_own_threshold(self, platform_client: APIClient) -> None:
        value = pdq(63)
        _list("TIGHT", "pdq", [f"{value},A"], threshold=4)
        _list("LOOSE", "pdq", [f"{value},A"], threshold=31)
        near = flip(value, 8)
        body = platform_client.get("/m/lookup", {"signal_type": "pdq", "signal": near}).json()
        assert list(body) == ["LOOSE"] and body["LOOSE"][0]["distance"] == "8"

    def test_exact_types_match_exactly(self, platform_client: APIClient) -> None:
        digest = hashlib.sha256(b"synthetic").hexdigest()
        _list("SHA", "sha256", [f"{digest},A"])
        assert (
            len(
                platform_client.get(
                    "/m/raw_lookup", {"signal_type": "sha256", "signal": digest}
                ).json()["matches"]
            )
            == 1
        )
        other = hashlib.sha256(b"other").hexdigest()
        assert platform_client.get(
            "/m/raw_lookup", {"signal_type": "sha256", "signal": other}
        ).json() == {"matches": []}


@pytest.mark.django_db
class CoinflipTests:
    def test_a_bank_with_a_partial_ratio_is_reported_by_a_seeded_coin_flip(
        self, admin_client: APIClient, platform_client: APIClient
    ) -> None:
        value = pdq(70)
        create_bank(admin_client, "HALF", enabled_ratio=0.5)
        add_signals(admin_client, "HALF", {"pdq": value})
        seeds = [str(n) for n in range(40)]
        reported = {
            seed: "HALF"
            in platform_client.get(
                "/m/lookup", {"signal_type": "pdq", "signal": value, "seed": seed}
            ).json()
            for seed in seeds
        }
        assert reported == {seed: coinflip(seed, bypass=False) <= 0.5 for seed in seeds}
        assert 5 < sum(reported.values()) < 35
        bypassed = platform_client.get(
            "/m/lookup",
            {"signal_type": "pdq", "signal": value, "seed": "x", "bypass_coinflip": "true"},
        ).json()
        assert "HALF" in bypassed
        # raw_lookup ignores the ratio, as HMA's does.
        raw = platform_client.get("/m/raw_lookup", {"signal_type": "pdq", "signal": value})
        assert len(raw.json()["matches"]) == 1


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hma-videos")
    return {
        "listed": write_synthetic_video(root / "listed.mp4", 7, seconds=8),
        "reencoded": write_synthetic_video(
            root / "reencoded.mp4", 7, seconds=8, width=480, height=360, crf=35
        ),
        "unrelated": write_synthetic_video(root / "unrelated.mp4", 99, seconds=8),
    }


@pytest.mark.django_db
class VideoLookupTests:
    def test_a_reencoded_upload_matches_a_listed_video_and_its_frames_a_listed_image(
        self, videos: dict[str, Path], platform_client: APIClient, admin_client: APIClient
    ) -> None:
        listed = hash_video(videos["listed"]).frames
        hash_list, _ = hash_list_upsert(name="VIDEOS", algorithm="vpdq", actor=ACTOR)
        imp = hash_import_create(
            hash_list=hash_list,
            content=vpdq_format(listed).encode(),
            filename="listed.txt",
            actor=ACTOR,
            category="A",
        )
        hash_import_run(import_id=imp.pk)
        create_bank(admin_client, "STILLS")
        add_signals(admin_client, "STILLS", {"pdq": listed[3].pdq})

        data = videos["reencoded"].read_bytes()
        body = platform_client.post("/m/lookup", upload("video", data, "v.mp4")).json()
        assert set(body) == {"video_md5", "vpdq", "sha256", "sha1"}
        video_match = body["vpdq"]["VIDEOS"][0]
        assert video_match["algorithm"] == "vpdq" and video_match["category"] == "A"
        assert video_match["distance"].endswith("%]") and video_match["listed_percent"] >= 80
        assert body["vpdq"]["STILLS"][0]["algorithm"] == "pdq"

        unrelated = videos["unrelated"].read_bytes()
        assert (
            platform_client.post("/m/lookup", upload("video", unrelated, "u.mp4")).json()["vpdq"]
            == {}
        )

    def test_a_vpdq_signal_added_to_a_bank_is_found_by_its_hash(
        self, videos: dict[str, Path], platform_client: APIClient, admin_client: APIClient
    ) -> None:
        signal = platform_client.post(
            "/h/hash?types=vpdq,video_md5", upload("video", videos["listed"].read_bytes())
        ).json()
        create_bank(admin_client, "CLIPS")
        added = add_signals(admin_client, "CLIPS", signal)
        assert set(added["ids"]) == {"vpdq", "video_md5"}
        raw = platform_client.get(
            "/m/raw_lookup",
            {"signal_type": "vpdq", "signal": signal["vpdq"], "include_distance": "true"},
        ).json()
        assert raw == {
            "matches": [{"bank_content_id": added["ids"]["vpdq"], "distance": "100%[100%]"}]
        }
        content = admin_client.get(
            f"/c/bank/CLIPS/content/{added['ids']['vpdq']}?include_signals=true"
        ).json()
        assert content["signals"] == {"vpdq": signal["vpdq"]}


@pytest.mark.django_db
class ListReuseTests:
    def test_a_process_rereads_the_lists_after_a_while_but_drops_stale_matches_at_once(
        self, admin_client: APIClient, platform_client: APIClient, settings: Any
    ) -> None:
        settings.HMA_LIST_CACHE_SECONDS = 3600
        value = pdq(80)
        create_bank(admin_client, "KEPT")
        kept = add_signals(admin_client, "KEPT", {"pdq": value})["id"]
        query = {"signal_type": "pdq", "signal": value}
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": [kept]}
        # A list created after the read is not searched until the next read...
        _list("LATER", "pdq", [f"{value},A"])
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": [kept]}
        # ...but an entry withdrawn, or a list disabled, stops matching at once.
        admin_client.put("/c/bank/KEPT", {"enabled": False}, format="json")
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": []}
        searchable_lists_clear()
        later = HashList.objects.get(name="LATER").hashes.get().pk
        assert platform_client.get("/m/raw_lookup", query).json() == {"matches": [later]}
