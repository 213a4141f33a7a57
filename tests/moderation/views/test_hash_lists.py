"""The hash-list console: admins create lists and import CSVs with progress; others may not."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.audit import SystemActor
from moderation.models import HashImport, HashList
from moderation.services.hashlists import hash_list_upsert
from tests.conftest import client_for
from tests.moderation.factories import random_pdq

ACTOR = SystemActor("test")


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
        csv = "".join(f"{random_pdq(rng)},A,\n" for _ in range(30)) + "bad,row\n"
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/hash-lists/{hl.pk}/import", {"file": SimpleUploadedFile("l.csv", csv.encode())}
            )
        assert response.status_code == 302
        imp = HashImport.objects.get()
        progress = client.get(f"/hash-imports/{imp.pk}").json()
        assert progress == {
            "id": imp.pk,
            "status": "completed_with_errors",  # a refused row: never "done"
            "status_display": "Completed with errors",
            "percent": 100,
            "processed": 30,
            "total": 30,
            "added": 30,
            "updated": 0,
            "withdrawn": 0,
            "invalid": 1,
            "error": "",
            "first_errors": [{"line": 31, "error": "not a 64-character hex pdq hash"}],
        }
        page = client.get("/hash-lists/").content.decode()
        assert "Console list" in page and 'role="progressbar"' in page

    def test_a_video_list_offers_video_formats_and_lists_its_import_as_read(
        self, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        videos, _ = hash_list_upsert(name="Videos", algorithm="vpdq", actor=ACTOR)
        pdqs, _ = hash_list_upsert(name="Stills", algorithm="pdq", actor=ACTOR)
        client = client_for(admin_user)
        page = client.get("/hash-lists/").content.decode()
        video_form = page.split(f'id="format-{videos.pk}"')[1].split("</form>")[0]
        still_form = page.split(f'id="format-{pdqs.pk}"')[1].split("</form>")[0]
        assert '<option value="vpdq">' in video_form and '<option value="csv">' not in video_form
        assert 'name="sync"' not in video_form  # a vPDQ list takes videos one by one
        assert '<option value="vpdq">' not in still_form and 'name="sync"' in still_form
        text = f"0,100,{random_pdq(random.Random(2))},0.000\n"
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                f"/hash-lists/{videos.pk}/import",
                {"file": SimpleUploadedFile("clip.vpdq.txt", text.encode()), "format": "csv"},
            )
        assert HashImport.objects.get().format == "vpdq"
        assert "clip.vpdq.txt · vpdq" in client.get("/hash-lists/").content.decode()

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
        assert client_for(moderator).get("/hash-lists/").status_code == 403  # leads' page (#20)
        assert client_for(lead).get("/hash-lists/").status_code == 200
        assert not HashList.objects.filter(name="Y").exists()
