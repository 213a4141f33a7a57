"""A draft referral's summary is editable by a lead until it is submitted (reports.packets
`packet_summary_edit` and the packet page's form), audited; refused afterwards."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.contrib.messages import get_messages

from core.models import AuditEvent
from reports.models import ReferralPacket
from reports.packets import PacketConflict, PacketError, packet_draft, packet_summary_edit
from tests.conftest import client_for

from .factories import decided_case, police, submitted_packet

SUMMARY = "Adult account asked a child for images and to meet (synthetic test)."


def rule_drafted(moderator: Any) -> ReferralPacket:
    """A draft as a rule leaves it: no drafter, a placeholder summary."""
    return packet_draft(
        cases=[decided_case(moderator)],
        destination=police(),
        priority="urgent",
        summary="Drafted by rule 'x'; a safety lead completes the summary before approval.",
        actor=moderator,
        drafted_by=None,
        reason="rule 'x'",
    )


@pytest.mark.django_db
class PacketSummaryEditTests:
    def test_a_lead_completes_a_drafts_summary_and_it_is_audited(
        self, moderator: Any, lead: Any
    ) -> None:
        packet = rule_drafted(moderator)
        edited = packet_summary_edit(packet=packet, lead=lead, summary=f"  {SUMMARY}\n")
        assert edited.summary == SUMMARY and edited.status == "draft"
        # Whoever writes the summary is its drafter: a second lead approves it.
        assert edited.drafted_by == lead
        event = AuditEvent.objects.get(verb="packet.summary_edited", object_id=str(packet.pk))
        assert event.actor == lead
        assert event.data["after_sha256"] == hashlib.sha256(SUMMARY.encode()).hexdigest()
        assert event.data["previous_drafter"] is None
        assert SUMMARY not in str(event.data)  # the text stays out of the undeletable log

    def test_an_empty_summary_is_refused(self, moderator: Any, lead: Any) -> None:
        packet = rule_drafted(moderator)
        with pytest.raises(PacketError, match="Write an incident summary"):
            packet_summary_edit(packet=packet, lead=lead, summary="   ")

    def test_it_is_refused_once_the_packet_is_submitted(self, moderator: Any, lead: Any) -> None:
        packet = submitted_packet(moderator, lead)
        with pytest.raises(PacketConflict, match="Only a draft's summary can be edited"):
            packet_summary_edit(packet=packet, lead=lead, summary=SUMMARY)
        assert ReferralPacket.objects.get(pk=packet.pk).summary == "s"
        assert not AuditEvent.objects.filter(verb="packet.summary_edited").exists()


@pytest.mark.django_db
class PacketSummaryPageTests:
    def test_the_draft_page_has_the_form_and_saves_it(self, moderator: Any, lead: Any) -> None:
        packet = rule_drafted(moderator)
        client = client_for(lead)
        html = client.get(f"/referrals/{packet.pk}/").content.decode()
        assert 'id="summary-form"' in html and "drafted automatically" in html
        response = client.post(f"/referrals/{packet.pk}/summary", {"summary": SUMMARY})
        assert response.status_code == 302 and response["Location"] == f"/referrals/{packet.pk}/"
        assert ReferralPacket.objects.get(pk=packet.pk).summary == SUMMARY

    def test_a_submitted_packet_shows_the_summary_without_the_form_and_refuses_edits(
        self, moderator: Any, lead: Any
    ) -> None:
        packet = submitted_packet(moderator, lead)
        client = client_for(lead)
        assert 'id="summary-form"' not in client.get(f"/referrals/{packet.pk}/").content.decode()
        response = client.post(f"/referrals/{packet.pk}/summary", {"summary": SUMMARY})
        assert response.status_code == 302
        assert [str(m) for m in get_messages(response.wsgi_request)] == [
            "Only a draft's summary can be edited (this one is awaiting approval)."
        ]
        assert ReferralPacket.objects.get(pk=packet.pk).summary == "s"

    def test_moderators_and_outsiders_may_not_edit_it(self, moderator: Any, outsider: Any) -> None:
        packet = rule_drafted(moderator)
        for user in (moderator, outsider):
            response = client_for(user).post(f"/referrals/{packet.pk}/summary", {"summary": "x"})
            assert response.status_code == 403
        assert ReferralPacket.objects.get(pk=packet.pk).summary != "x"
