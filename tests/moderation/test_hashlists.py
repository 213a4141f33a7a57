"""Hash lists: CSV import (command, console, API), progress, idempotence, retroactive matching."""

from __future__ import annotations

import random
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.models import AuditEvent
from moderation.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.media.hashing import hamming_hex
from moderation.media.synthetic import synthetic_jpeg
from moderation.models import Case, Flag, HashImport, HashList, KnownHash, Match, Media
from tests.conftest import client_for

ACTOR = SystemActor("test")


def _random_pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _flip(hex_value: str, bits: int) -> str:
    value = int(hex_value, 16)
    for bit in range(bits):
        value ^= 1 << (bit * 7 % (len(hex_value) * 4))
    return f"{value:0{len(hex_value)}x}"


@pytest.mark.django_db
class ImportHashesCommandTests:
    def test_it_imports_valid_rows_and_reports_invalid_ones_with_line_numbers(
        self, tmp_path: Path
    ) -> None:
        rng = random.Random(1)
        good = [_random_pdq(rng) for _ in range(3)]
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
        csv.write_text("".join(f"{_random_pdq(rng)},A,\n" for _ in range(50)))
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
        value = _random_pdq(random.Random(3))
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


def _stored_image(client: APIClient, seed: int, callbacks: Any) -> Media:
    with callbacks(execute=True):
        response = client.post(
            "/api/v1/items",
            {
                "source": "acme",
                "external_id": f"img-{seed}",
                "kind": "image",
                "subject_account_id": f"u{seed}",
                "media": SimpleUploadedFile(
                    "a.jpg", synthetic_jpeg(seed, 400, 300), content_type="image/jpeg"
                ),
            },
            format="multipart",
        )
    assert response.status_code == 201
    return Media.objects.get(item_id=response.json()["id"])


@pytest.mark.django_db
class MatchingTests:
    def test_a_near_duplicate_pdq_within_the_threshold_matches_and_flags_the_item(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any
    ) -> None:
        probe = _stored_image(platform_client, 10, django_capture_on_commit_callbacks)
        near = _flip(probe.pdq, 12)
        assert hamming_hex(near, probe.pdq) == 12
        hl, _ = hash_list_upsert(
            name="P", algorithm="pdq", threshold=20, actor=ACTOR, verified=True
        )
        rng = random.Random(4)
        content = "".join(f"{_random_pdq(rng)},C,\n" for _ in range(100)) + f"{near},A,\n"
        with django_capture_on_commit_callbacks(execute=True):
            imp = hash_import_create(
                hash_list=hl, content=content.encode(), filename="p.csv", actor=ACTOR
            )
            hash_import_run(import_id=imp.pk)
        match = Match.objects.get(media=probe)  # retroactive: found by the rescan
        assert match.distance == 12 and match.known_hash.category == "A"
        assert match.list_version == HashList.objects.get(pk=hl.pk).version
        flag = Flag.objects.get(match=match)
        assert flag.source == "hash_match" and flag.category.code == "known_csam"
        case = Case.objects.get(pk=probe.item.case_id)
        assert case.category.code == "known_csam" and case.priority == 3
        assert AuditEvent.objects.filter(verb="match.recorded").count() == 1

    def test_new_uploads_match_existing_lists_exactly_and_perceptually(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any, tmp_path: Path
    ) -> None:
        data = synthetic_jpeg(11, 400, 300)
        from moderation.media.hashing import compute_hashes

        path = tmp_path / "x.jpg"
        path.write_bytes(data)
        hashes = compute_hashes(path)
        for name, alg, value in (
            ("S", "sha256", hashes.sha256),
            ("M", "md5", hashes.md5),
            ("Q", "pdq", _flip(hashes.pdq, 31)),
            ("F", "pdq", _flip(hashes.pdq, 30)),
        ):
            hl, _ = hash_list_upsert(
                name=name, algorithm=alg, threshold=30 if name == "F" else None, actor=ACTOR
            )
            imp = hash_import_create(
                hash_list=hl, content=f"{value},A,\n".encode(), filename="x.csv", actor=ACTOR
            )
            hash_import_run(import_id=imp.pk)
        HashList.objects.filter(name="Q").update(threshold=31)
        media = _stored_image(platform_client, 11, django_capture_on_commit_callbacks)
        got = {m.hash_list.name: m.distance for m in Match.objects.filter(media=media)}
        assert got == {"S": 0, "M": 0, "Q": 31, "F": 30}

    def test_disabled_lists_are_not_matched(
        self, platform_client: APIClient, django_capture_on_commit_callbacks: Any, tmp_path: Path
    ) -> None:
        data = synthetic_jpeg(12, 400, 300)
        import hashlib

        hl, _ = hash_list_upsert(name="S", algorithm="sha256", actor=ACTOR, enabled=False)
        imp = hash_import_create(
            hash_list=hl,
            content=f"{hashlib.sha256(data).hexdigest()},A\n".encode(),
            filename="x.csv",
            actor=ACTOR,
        )
        hash_import_run(import_id=imp.pk)
        media = _stored_image(platform_client, 12, django_capture_on_commit_callbacks)
        assert not Match.objects.filter(media=media).exists()


@pytest.mark.django_db
class HashListConsoleTests:
    def test_an_admin_creates_a_list_and_imports_a_csv_with_progress(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = client_for(admin_user)
        response = client.post(
            "/hash-lists/new",
            {"name": "Console list", "provider": "iwf", "algorithm": "pdq", "threshold": 25},
        )
        assert response.status_code == 302
        hl = HashList.objects.get(name="Console list")
        assert (hl.provider, hl.threshold) == ("iwf", 25)
        rng = random.Random(5)
        csv = "".join(f"{_random_pdq(rng)},A,\n" for _ in range(30)) + "bad,row\n"
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/hash-lists/{hl.pk}/import", {"file": SimpleUploadedFile("l.csv", csv.encode())}
            )
        assert response.status_code == 302
        imp = HashImport.objects.get()
        progress = client.get(f"/hash-imports/{imp.pk}").json()
        assert progress == {
            "id": imp.pk,
            "status": "done",
            "percent": 100,
            "processed": 30,
            "total": 30,
            "added": 30,
            "updated": 0,
            "invalid": 1,
        }
        page = client.get("/hash-lists/").content.decode()
        assert "Console list" in page and 'role="progressbar"' in page

    def test_moderators_and_outsiders_cannot_create_or_import(
        self, moderator: Any, outsider: Any, lead: Any
    ) -> None:
        hl, _ = hash_list_upsert(name="X", algorithm="md5", actor=ACTOR)
        for user in (moderator, outsider, lead):
            client = client_for(user)
            assert (
                client.post(
                    "/hash-lists/new", {"name": "Y", "provider": "iwf", "algorithm": "md5"}
                ).status_code
                == 403
            )
            assert client.post(f"/hash-lists/{hl.pk}/import", {}).status_code == 403
        assert client_for(outsider).get("/hash-lists/").status_code == 403
        assert client_for(lead).get("/hash-lists/").status_code == 200
        assert not HashList.objects.filter(name="Y").exists()


@pytest.mark.django_db
class HashListApiTests:
    def test_an_admin_creates_a_list_uploads_a_csv_and_polls_progress(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = client_for(admin_user)
        response = client.post(
            "/api/v1/hash-lists",
            {"name": "API list", "algorithm": "phash", "threshold": 8},
            format="json",
        )
        assert response.status_code == 201
        list_id = response.json()["id"]
        csv = "".join(f"{random.Random(i).getrandbits(64):016x},B,\n" for i in range(10))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/api/v1/hash-lists/{list_id}/imports",
                {"file": SimpleUploadedFile("l.csv", csv.encode())},
                format="multipart",
            )
        assert response.status_code == 202
        progress = client.get(f"/api/v1/hash-imports/{response.json()['id']}").json()
        assert progress["status"] == "done" and progress["added"] == 10
        listed = client.get("/api/v1/hash-lists").json()
        assert listed[0]["size"] == 10 and listed[0]["version"] == 2

    def test_invalid_list_settings_get_400(self, admin_user: Any) -> None:
        client = client_for(admin_user)
        response = client.post(
            "/api/v1/hash-lists",
            {"name": "Z", "algorithm": "phash", "threshold": 20},
            format="json",
        )
        assert response.status_code == 400
        assert "out of range" in str(response.json()["error"])

    def test_moderators_read_but_cannot_create(self, moderator: Any, outsider: Any) -> None:
        assert client_for(moderator).get("/api/v1/hash-lists").status_code == 200
        assert (
            client_for(moderator)
            .post("/api/v1/hash-lists", {"name": "n", "algorithm": "md5"}, format="json")
            .status_code
            == 403
        )
        assert client_for(outsider).get("/api/v1/hash-lists").status_code == 403
        assert APIClient().get("/api/v1/hash-lists").status_code == 401
