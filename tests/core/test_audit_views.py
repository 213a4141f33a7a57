"""The audit page (core.audit_views): leads read the trail, filtered; reading it is audited."""

from __future__ import annotations

from typing import Any

import pytest

from core.audit import SystemActor, audit_record
from core.models import AuditEvent
from tests.conftest import client_for


@pytest.mark.django_db
class AuditPageTests:
    def test_leads_filter_the_log_and_their_viewing_is_recorded(
        self, lead: Any, moderator: Any
    ) -> None:
        actor = SystemActor("test")
        audit_record(actor=actor, verb="case.claimed", object_type="moderation.case", object_id=7)
        audit_record(
            actor=actor,
            verb="media.revealed",
            object_type="moderation.media",
            object_id=3,
            data={"case": 7, "reason": "assess \u202eexe.jpg"},
        )
        audit_record(actor=actor, verb="case.claimed", object_type="moderation.case", object_id=8)
        client = client_for(lead)
        page = client.get("/audit/?case=SG-000007").content.decode()
        assert "case.claimed" in page and "media.revealed" in page
        assert "moderation.case:8" not in page
        assert "⟦U+202E⟧" in page  # a bidi override is shown, not obeyed
        reveals = client.get("/audit/?kind=reveals").content.decode()
        assert "media.revealed" in reveals and "case.claimed" not in reveals
        viewed = AuditEvent.objects.filter(verb="audit.viewed").order_by("id")
        assert [e.data["filters"] for e in viewed] == [{"case": "SG-000007"}, {"kind": "reveals"}]
        assert client_for(moderator).get("/audit/").status_code == 403
