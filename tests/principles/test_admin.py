"""The principle admin: provenance and `checked` must agree; accepted edits are audited."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import AuditEvent
from principles.models import Principle, Provenance
from tests.conftest import client_for


def _form(principle: Principle, **changes: Any) -> dict[str, Any]:
    data = {
        "theme": principle.theme,
        "title": principle.title,
        "text": principle.text,
        "source_url": principle.source_url,
        "source_title": principle.source_title,
        "provenance": principle.provenance,
        "checked": "on" if principle.checked else "",
        **changes,
    }
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
class PrincipleAdminTests:
    def test_it_refuses_checked_wording_whose_provenance_is_unverified(
        self, admin_user: Any
    ) -> None:
        eight = Principle.objects.get(number=8)
        before = AuditEvent.objects.count()
        response = client_for(admin_user).post(
            f"/admin/principles/principle/{eight.pk}/change/", _form(eight, checked="on")
        )
        assert response.status_code == 200
        assert "must be ticked exactly when the provenance" in response.content.decode()
        assert Principle.objects.get(number=8).checked is False
        assert AuditEvent.objects.count() == before

    def test_marking_wording_verified_is_saved_and_audited(self, admin_user: Any) -> None:
        eight = Principle.objects.get(number=8)
        response = client_for(admin_user).post(
            f"/admin/principles/principle/{eight.pk}/change/",
            _form(eight, checked="on", provenance=Provenance.VERIFIED),
        )
        assert response.status_code == 302
        eight.refresh_from_db()
        assert (eight.provenance, eight.checked) == (Provenance.VERIFIED, True)
        event = AuditEvent.objects.latest("id")
        assert event.verb == "principle.updated"
        assert set(event.data["changes"]) == {"provenance", "checked"}
