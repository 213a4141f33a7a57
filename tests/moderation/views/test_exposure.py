"""The exposure overview: leads see aggregates only; moderators may not open it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import client_for
from tests.moderation.factories import make_claimed_image_case, reveal_in_console


@pytest.mark.django_db
class ExposureOverviewTests:
    def test_leads_see_aggregates_only(self, moderator: Any, lead: Any) -> None:
        case, media = make_claimed_image_case(moderator)
        reveal_in_console(client_for(moderator), case, media)
        html = client_for(lead).get("/exposure/").content.decode()
        assert "Reveals" in html and moderator.username not in html.split("<form")[0]
        assert client_for(moderator).get("/exposure/").status_code == 403
