"""The HMA routes as an API: who may call what (tokens and sessions), the error shape, bad input
answered with a 4xx (never a 5xx), rate limits, and the routes in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from core.models import AuditEvent
from tests.conftest import client_for
from tests.hma.factories import add_signals, create_bank, jpeg, md5, pdq, upload

# (method, path, body) of a representative, valid call to each route, and who may make it.
MATCHING = [
    ("post", "/h/hash?types=photo_md5", "photo"),
    ("get", f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}", None),
    ("get", f"/m/lookup?signal_type=pdq&signal={pdq(1)}", None),
    ("post", "/m/lookup?types=photo_md5", "photo"),
    ("get", "/m/index/status", None),
    ("post", "/m/compare", {"pdq": [pdq(1), pdq(2)]}),
]
CURATION_READS = [
    ("get", "/c/banks", None),
    ("get", "/c/bank/ROLES", None),
    ("get", "/c/bank/ROLES/content/{id}", None),
]
CURATION_WRITES = [
    ("post", "/c/banks", {"name": "ANOTHER"}),
    ("put", "/c/bank/ROLES", {"enabled_ratio": 0.5}),
    ("post", "/c/bank/ROLES/signal", {"video_md5": md5(1)}),
    ("post", "/c/bank/ROLES/content?types=photo_md5", "photo"),
    ("delete", "/c/bank/ROLES/content/{id}", None),
    ("delete", "/c/bank/ROLES", None),
]


def _call(client: APIClient, method: str, path: str, body: Any, content_id: int) -> Any:
    path = path.replace("{id}", str(content_id))
    if body == "photo":
        return getattr(client, method)(path, upload("photo", jpeg(3)))
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


@pytest.fixture
def roles_bank(admin_client: APIClient) -> int:
    create_bank(admin_client, "ROLES")
    return add_signals(admin_client, "ROLES", {"pdq": pdq(1)})["id"]


@pytest.mark.django_db
class RoleTests:
    """Every route, every kind of caller: the platform matches, leads read, admins curate."""

    @pytest.mark.parametrize(("method", "path", "body"), MATCHING)
    def test_platforms_leads_and_admins_may_hash_and_match_others_may_not(
        self,
        method: str,
        path: str,
        body: Any,
        roles_bank: int,
        platform_client: APIClient,
        lead_client: APIClient,
        admin_client: APIClient,
        moderator_client: APIClient,
        outsider_client: APIClient,
    ) -> None:
        for client in (platform_client, lead_client, admin_client):
            assert _call(client, method, path, body, roles_bank).status_code == 200
        for client in (moderator_client, outsider_client):
            assert _call(client, method, path, body, roles_bank).status_code == 403
        assert _call(APIClient(), method, path, body, roles_bank).status_code == 401

    @pytest.mark.parametrize(("method", "path", "body"), CURATION_READS)
    def test_leads_and_admins_read_banks_platforms_may_not(
        self,
        method: str,
        path: str,
        body: Any,
        roles_bank: int,
        platform_client: APIClient,
        lead_client: APIClient,
        admin_client: APIClient,
        moderator_client: APIClient,
    ) -> None:
        for client in (lead_client, admin_client):
            assert _call(client, method, path, body, roles_bank).status_code == 200
        for client in (platform_client, moderator_client):
            assert _call(client, method, path, body, roles_bank).status_code == 403
        assert _call(APIClient(), method, path, body, roles_bank).status_code == 401

    @pytest.mark.parametrize(("method", "path", "body"), CURATION_WRITES)
    def test_only_admins_curate(
        self,
        method: str,
        path: str,
        body: Any,
        roles_bank: int,
        platform_client: APIClient,
        lead_client: APIClient,
        admin_client: APIClient,
    ) -> None:
        for client in (platform_client, lead_client):
            assert _call(client, method, path, body, roles_bank).status_code == 403
        assert _call(APIClient(), method, path, body, roles_bank).status_code == 401
        response = _call(admin_client, method, path, body, roles_bank)
        assert response.status_code in (200, 201), response.content

    def test_a_console_session_works_as_the_rest_of_the_api_does(
        self, admin_user: Any, lead: Any
    ) -> None:
        admin = client_for(admin_user)
        assert admin.post("/c/banks", {"name": "BY_SESSION"}, format="json").status_code == 201
        assert client_for(lead).get("/c/bank/BY_SESSION").status_code == 200
        assert client_for(lead).delete("/c/bank/BY_SESSION").status_code == 403

    def test_a_revoked_or_wrong_token_is_401(self) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token sg_not-a-real-key")
        response = client.get("/m/index/status")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.django_db
class AuditTests:
    def test_every_curation_write_is_audited_with_its_actor(
        self, admin_client: APIClient, admin_user: Any
    ) -> None:
        create_bank(admin_client, "AUDITED")
        content_id = add_signals(admin_client, "AUDITED", {"pdq": pdq(5)})["id"]
        admin_client.put("/c/bank/AUDITED", {"name": "AUDITED_2"}, format="json")
        admin_client.delete(f"/c/bank/AUDITED_2/content/{content_id}")
        admin_client.delete("/c/bank/AUDITED_2")
        verbs = list(
            AuditEvent.objects.filter(actor=admin_user)
            .order_by("id")
            .values_list("verb", flat=True)
        )
        assert verbs == [
            "hma_bank.created",
            "hash_list.created",
            "hma_bank.list_linked",
            "known_hash.added",
            "hma_bank.updated",
            "hash_list.withdrawn",
            "hash_list.updated",
            "hma_bank.deleted",
        ]

    def test_lookups_and_hashing_write_nothing(self, platform_client: APIClient) -> None:
        before = AuditEvent.objects.count()
        platform_client.get(f"/m/lookup?signal_type=pdq&signal={pdq(1)}")
        platform_client.post("/h/hash?types=pdq", upload("photo", jpeg(1)))
        assert AuditEvent.objects.count() == before


@pytest.mark.django_db
class BadInputTests:
    """Unknown signal type, malformed hash, unknown bank, oversized or unsupported upload: an
    HMA-style 4xx with Safeguard's error shape (and HMA's `message`), never a 5xx."""

    @pytest.mark.parametrize(
        ("query", "code"),
        [
            ("signal_type=nope&signal=00", "unknown_signal_type"),
            (f"signal_type=pdq&signal={'a' * 63}", "invalid_signal"),
            (f"signal_type=pdq&signal={'g' * 64}", "invalid_signal"),
            ("signal_type=video_md5&signal=xyz", "invalid_signal"),
            ("signal_type=vpdq&signal=not-json", "invalid_signal"),
            ('signal_type=vpdq&signal=["abc,1,0"]', "invalid_signal"),
            ("signal_type=vpdq&signal=[]", "invalid_signal"),
            (f"signal_type=pdq&signal={pdq(1)}&quality=101", "invalid"),
        ],
    )
    def test_bad_lookups_are_400(self, query: str, code: str, platform_client: APIClient) -> None:
        for path in ("/m/raw_lookup", "/m/lookup"):
            response = platform_client.get(f"{path}?{query}")
            assert response.status_code == 400, (path, response.content)
            body = response.json()
            assert body["error"]["code"] == code
            assert body["message"] == body["error"]["message"]

    def test_missing_parameters_are_400(self, platform_client: APIClient) -> None:
        raw = platform_client.get("/m/raw_lookup?signal_type=pdq")
        assert raw.status_code == 400 and raw.json()["error"]["fields"] == {
            "signal": ["This field is required."]
        }
        lookup = platform_client.get("/m/lookup?signal_type=pdq")
        assert lookup.status_code == 400
        assert lookup.json()["message"] == "Either url or both signal and signal_type are required"
        maybe = platform_client.get(
            f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}&include_distance=maybe"
        )
        assert maybe.status_code == 400 and "include_distance" in maybe.json()["error"]["fields"]

    def test_an_unknown_bank_is_404_to_curation_and_no_match_to_lookups(
        self, admin_client: APIClient, platform_client: APIClient
    ) -> None:
        for method, path, body in [
            ("get", "/c/bank/NO_SUCH", None),
            ("put", "/c/bank/NO_SUCH", {"enabled": False}),
            ("post", "/c/bank/NO_SUCH/signal", {"pdq": pdq(1)}),
            ("get", "/c/bank/NO_SUCH/content/1", None),
            ("delete", "/c/bank/NO_SUCH/content/1", None),
        ]:
            response = _call(admin_client, method, path, body, 1)
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == "bank_not_found"
        response = platform_client.get(f"/m/lookup?signal_type=pdq&signal={pdq(1)}&banks=NO_SUCH")
        assert response.status_code == 200 and response.json() == {}

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({}, "invalid_request"),
            ({"pdq": "zz"}, "invalid_signal"),
            ({"nope": pdq(1)}, "unknown_signal_type"),
            ({"pdq": pdq(1), "video_md5": "short"}, "invalid_signal"),
            ({"pdq": 12}, "invalid_signal"),
        ],
    )
    def test_bad_signals_are_400_and_add_nothing(
        self, body: dict[str, Any], code: str, admin_client: APIClient
    ) -> None:
        create_bank(admin_client, "STRICT")
        response = admin_client.post("/c/bank/STRICT/signal", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code
        assert admin_client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}").json() == {
            "matches": []
        }

    @pytest.mark.parametrize(
        ("field", "data", "code"),
        [
            ("photo", b"", "empty_file"),
            ("photo", b"just some text, not an image at all" * 4, "unsupported_type"),
            ("photo", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, "content_type_mismatch"),
            ("video", jpeg(1), "content_type_mismatch"),
            ("photo", b"\xff\xd8\xff\xe0" + b"\x00" * 200, "unhashable_media"),
            ("text", b"hello", "unknown_content_type"),
        ],
    )
    def test_unsupported_damaged_or_mislabelled_uploads_are_400(
        self, field: str, data: bytes, code: str, platform_client: APIClient
    ) -> None:
        for path in ("/h/hash", "/m/lookup"):
            response = platform_client.post(path, upload(field, data))
            assert response.status_code == 400, (path, response.content)
            assert response.json()["error"]["code"] == code

    def test_an_oversized_body_is_refused_before_it_is_read(
        self, platform_client: APIClient, settings: Any
    ) -> None:
        settings.HMA_MAX_UPLOAD_BYTES = 1024
        big = b"\xff\xd8\xff" + b"\x00" * 200_000
        for path in ("/h/hash", "/m/lookup"):
            response = platform_client.post(path, upload("photo", big))
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "too_large"

    def test_other_paths_under_hmas_prefixes_are_json_404s(self, admin_client: APIClient) -> None:
        for path in ("/c/bank/X/content/-1", "/c/bank/X/content/abc", "/m/nope", "/h/"):
            response = admin_client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"

    def test_a_bank_list_managed_in_the_console_is_read_only_here(
        self, admin_client: APIClient
    ) -> None:
        from core.audit import SystemActor
        from moderation.services.hashlists import hash_list_upsert

        hash_list_upsert(name="IWF", algorithm="pdq", actor=SystemActor("test"))
        assert admin_client.get("/c/bank/IWF").json() == {
            "name": "IWF",
            "matching_enabled_ratio": 1.0,
        }
        for method, path, body in [
            ("put", "/c/bank/IWF", {"enabled": False}),
            ("delete", "/c/bank/IWF", None),
            ("post", "/c/bank/IWF/signal", {"pdq": pdq(1)}),
            ("post", "/c/bank/IWF/content", "photo"),
            ("delete", "/c/bank/IWF/content/1", None),
        ]:
            response = _call(admin_client, method, path, body, 1)
            assert response.status_code == 403, (method, path)
            assert response.json()["error"]["code"] == "managed_in_console"
        assert admin_client.post("/c/banks", {"name": "IWF"}, format="json").status_code == 403


@pytest.mark.django_db
class RateLimitTests:
    def test_hma_routes_share_the_api_rate_limit(
        self, platform_client: APIClient, settings: Any
    ) -> None:
        settings.SAFEGUARD_API_RATE = "3/min"
        settings.SAFEGUARD_THROTTLE_NAMESPACE = "hma-test"
        cache.clear()
        statuses = [platform_client.get("/m/index/status").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = platform_client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq(1)}")
        assert response.status_code == 429 and "Retry-After" in response


@pytest.mark.django_db
class SchemaTests:
    def test_every_hma_route_is_in_the_openapi_schema_with_its_tag(self, admin_user: Any) -> None:
        schema = client_for(admin_user).get("/api/schema/?format=json").json()
        operations = {
            f"{method.upper()} {path}": operation
            for path, item in schema["paths"].items()
            if path.startswith(("/h/", "/m/", "/c/"))
            for method, operation in item.items()
        }
        assert set(operations) == {
            "POST /h/hash",
            "GET /m/raw_lookup",
            "GET /m/lookup",
            "POST /m/lookup",
            "GET /m/index/status",
            "POST /m/compare",
            "GET /c/banks",
            "POST /c/banks",
            "GET /c/bank/{bank_name}",
            "PUT /c/bank/{bank_name}",
            "DELETE /c/bank/{bank_name}",
            "POST /c/bank/{bank_name}/signal",
            "POST /c/bank/{bank_name}/content",
            "GET /c/bank/{bank_name}/content/{content_id}",
            "DELETE /c/bank/{bank_name}/content/{content_id}",
        }
        assert all(op["tags"][0].startswith("HMA ") for op in operations.values())
        assert all({"tokenAuth": []} in op["security"] for op in operations.values())
