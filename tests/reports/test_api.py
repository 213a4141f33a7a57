"""The referral API (reports.api): four eyes, refusals in the one error shape, permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import remove_perm

from reports.models import Destination, ReferralPacket
from reports.packets import PacketError, packet_approve
from tests.conftest import client_for

from .factories import decided_case, police, ready_packet


def _draft_through_the_api(lead: Any, case: Any, destination: Destination | None = None) -> int:
    response = client_for(lead).post(
        "/api/v1/referrals",
        {
            "cases": [case.pk],
            "destination": (destination or police()).pk,
            "priority": "routine",
            "summary": "s",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.django_db
class ReferralApiTests:
    def test_the_drafter_cannot_approve_and_refusals_leave_the_state_unchanged(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        packet_id = _draft_through_the_api(lead, decided_case(moderator))
        response = client_for(lead).post(
            f"/api/v1/referrals/{packet_id}/approve", {"declaration_confirmed": True}, format="json"
        )
        assert (
            response.status_code == 409
            and "second safety lead" in response.json()["error"]["message"]
        )
        assert ReferralPacket.objects.get(pk=packet_id).status == "awaiting_approval"
        response = client_for(lead).get(f"/api/v1/referrals/{packet_id}/download")
        assert response.status_code == 409 and "not ready" in response.json()["error"]["message"]
        packet_approve(
            packet=ReferralPacket.objects.get(pk=packet_id), lead=lead2, declaration_confirmed=True
        )
        with pytest.raises(PacketError, match="awaiting approval"):
            packet_approve(
                packet=ReferralPacket.objects.get(pk=packet_id),
                lead=lead2,
                declaration_confirmed=True,
            )

    def test_refusals_keep_their_error_shapes(self, moderator: Any, lead: Any) -> None:
        case = decided_case(moderator)
        disabled = police()
        disabled.enabled = False
        disabled.save(update_fields=["enabled"])
        response = client_for(lead).post(
            "/api/v1/referrals",
            {"cases": [case.pk], "destination": disabled.pk, "priority": "routine", "summary": "s"},
            format="json",
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": {
                "code": "invalid",
                "message": "The request is invalid; see fields.",
                "fields": {"detail": "The destination 'Kent Police' is disabled."},
            }
        }
        disabled.enabled = True
        disabled.save(update_fields=["enabled"])
        packet_id = _draft_through_the_api(lead, case, disabled)
        response = client_for(lead).post(
            f"/api/v1/referrals/{packet_id}/approve", {"declaration_confirmed": True}, format="json"
        )
        assert response.status_code == 409
        assert response.json() == {
            "error": {
                "code": "conflict",
                "message": "You drafted this packet: a second safety lead must approve it.",
            }
        }
        response = client_for(lead).get(f"/api/v1/referrals/{packet_id}/download")
        assert response.status_code == 409
        assert response.json() == {
            "error": {
                "code": "conflict",
                "message": "The packet is not ready (it is awaiting approval).",
            }
        }


@pytest.mark.django_db
class ReferralApiPermissionTests:
    def test_moderators_outsiders_and_anonymous_cannot_touch_packets(
        self,
        moderator: Any,
        outsider: Any,
        lead: Any,
        lead2: Any,
        client: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        for user in (moderator, outsider):
            c = client_for(user)
            assert c.get(f"/api/v1/referrals/{packet.pk}").status_code == 403
            assert c.get(f"/api/v1/referrals/{packet.pk}/download").status_code == 403
            assert c.post(f"/api/v1/referrals/{packet.pk}/approve").status_code == 403
        assert client.get(f"/api/v1/referrals/{packet.pk}").status_code in (401, 403)

    def test_a_lead_without_object_permission_gets_404(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        group = Group.objects.get(name="Safety lead")
        for perm in ("view_referralpacket", "download_referralpacket", "approve_referralpacket"):
            remove_perm(f"reports.{perm}", group, packet)
        assert client_for(lead).get(f"/api/v1/referrals/{packet.pk}").status_code == 404
