"""The interactive API docs work under the Content Security Policy (no inline scripts)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class ApiDocsTests:
    def test_swagger_ui_renders_the_operations_from_vendored_files(
        self, page: Any, live_server: Any, admin_user: Any
    ) -> None:
        blocked: list[str] = []
        page.on(
            "console",
            lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        login(page, live_server, "admin1")
        page.goto(f"{live_server.url}/api/docs/")
        expect(page.get_by_text("/api/v1/items", exact=True).first).to_be_visible(timeout=15000)
        assert not blocked, blocked
