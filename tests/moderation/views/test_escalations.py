"""The escalations console: the immediate-risk button, the board and who may open it."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.models import Escalation
from moderation.services.escalations import case_mark_immediate_risk
from tests.conftest import client_for
from tests.moderation.factories import make_case


@pytest.mark.django_db
class ImmediateRiskButtonTests:
    def test_the_console_button_needs_confirmation(self, moderator: Any) -> None:
        case = make_case(kind="message")
        client = client_for(moderator)
        client.post(f"/cases/{case.pk}/immediate-risk", {"reason": "x"})
        assert not Escalation.objects.exists()
        client.post(f"/cases/{case.pk}/immediate-risk", {"reason": "x", "confirm": "yes"})
        assert Escalation.objects.filter(case=case).exists()


@pytest.mark.django_db
class EscalationAccessTests:
    def test_moderators_and_outsiders_cannot_open_the_board(
        self, moderator: Any, outsider: Any
    ) -> None:
        escalation = case_mark_immediate_risk(
            case=make_case(kind="message"), actor=moderator, reason="x"
        )
        for user in (moderator, outsider):
            assert client_for(user).get("/escalations/").status_code == 403
            assert client_for(user).get(f"/escalations/{escalation.pk}/").status_code == 403
            assert (
                client_for(user).post(f"/escalations/{escalation.pk}/acknowledge").status_code
                == 403
            )
