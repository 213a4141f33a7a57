"""The public API's routes (moderation.api_urls) as documented in the OpenAPI schema, and the
docs page that renders it from vendored assets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import client_for


@pytest.mark.django_db
class OpenApiTests:
    def test_the_schema_documents_the_public_contract(self, moderator: Any) -> None:
        response = client_for(moderator).get("/api/schema/?format=json")
        assert response.status_code == 200
        paths = response.json()["paths"]
        for path in (
            "/api/v1/items",
            "/api/v1/items/{item_id}",
            "/api/v1/items/batch",
            "/api/v1/reports",
            "/api/v1/principles",
            "/api/v1/hash-lists",
        ):
            assert path in paths, path
        schemes = response.json()["components"]["securitySchemes"]
        assert schemes["tokenAuth"]["name"] == "Authorization"

    def test_the_docs_page_uses_vendored_assets(self, moderator: Any) -> None:
        html = client_for(moderator).get("/api/docs/").content.decode()
        assert "cdn" not in html.lower() and "/static/" in html
