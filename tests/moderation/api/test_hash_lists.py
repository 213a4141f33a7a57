"""The hash-lists API: admins create lists, upload CSVs and poll progress; leads read;
moderators get 403."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from moderation.models import HashImport
from tests.conftest import client_for


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

    def test_vpdq_text_sent_to_a_hash_list_gets_400_naming_the_format(
        self, admin_user: Any
    ) -> None:
        client = client_for(admin_user)
        list_id = client.post(
            "/api/v1/hash-lists", {"name": "Stills", "algorithm": "pdq"}, format="json"
        ).json()["id"]
        response = client.post(
            f"/api/v1/hash-lists/{list_id}/imports",
            {"file": SimpleUploadedFile("clip.txt", b"0,100,00,0.0\n"), "format": "vpdq"},
            format="multipart",
        )
        assert response.status_code == 400
        assert "vPDQ list" in str(response.json()["error"]["fields"]["format"])
        assert not HashImport.objects.exists()  # nothing stored

    def test_moderators_neither_list_nor_create(
        self, moderator: Any, lead: Any, outsider: Any
    ) -> None:
        # Probe finding (#20): hash lists and import progress are the leads' business.
        assert client_for(moderator).get("/api/v1/hash-lists").status_code == 403
        assert client_for(lead).get("/api/v1/hash-lists").status_code == 200
        assert (
            client_for(moderator)
            .post("/api/v1/hash-lists", {"name": "n", "algorithm": "md5"}, format="json")
            .status_code
            == 403
        )
        assert client_for(outsider).get("/api/v1/hash-lists").status_code == 403
        assert APIClient().get("/api/v1/hash-lists").status_code == 401
