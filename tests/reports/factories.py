"""Builders shared by the reports tests: destinations, decided cases, built packets, periods."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from moderation.models import Decision, Media
from moderation.services.exposure import media_reveal
from moderation.services.queue import case_claim_next
from moderation.services.review import decision_record
from principles.models import HarmCategory
from reports.models import Destination, ReferralPacket
from reports.packets import packet_draft, packet_submit
from reports.selectors.compliance import Period, parse_period
from tests.conftest import client_for
from tests.moderation.factories import make_case


def police() -> Destination:
    """Kent Police, from the force list (dry run until an admin sets its contact route)."""
    return Destination.objects.get(code="kent")


def other_police() -> Destination:
    return Destination.objects.get(code="essex")


def live(destination: Destination) -> Destination:
    """The destination with a contact route, out of dry run (as an admin would set it)."""
    destination.contact_email = "referrals@police.example"
    destination.mode = Destination.Mode.PRODUCTION
    destination.save(update_fields=["contact_email", "mode"])
    return destination


def decided_case(moderator: Any) -> Any:
    """An image case the moderator claimed, revealed and removed-and-reported as grooming."""
    case = make_case(kind="image", category="grooming")
    claimed = case_claim_next(user=moderator)
    media = Media.objects.get(item__case=case)
    media_reveal(media=media, case=claimed, user=moderator, reason="assess the image")
    decision_record(
        case=claimed,
        moderator=moderator,
        outcome="remove_and_report",
        categories=[HarmCategory.objects.get(code="grooming")],
        rationale="synthetic rationale",
    )
    return case


def ready_packet(
    moderator: Any, lead: Any, lead2: Any, callbacks: Any, destination: Destination | None = None
) -> ReferralPacket:
    """Drafted by `lead` through the API, approved by `lead2`, built in-process."""
    case = decided_case(moderator)
    response = client_for(lead).post(
        "/api/v1/referrals",
        {
            "cases": [case.pk],
            "destination": (destination or police()).pk,
            "priority": "urgent",
            "summary": "Adult account grooming a child (synthetic test).",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    packet_id = response.json()["id"]
    with callbacks(execute=True):
        response = client_for(lead2).post(
            f"/api/v1/referrals/{packet_id}/approve", {"declaration_confirmed": True}, format="json"
        )
    assert response.status_code == 200, response.content
    packet = ReferralPacket.objects.get(pk=packet_id)
    assert packet.status == "ready", packet.error
    return packet


def download(client: Any, packet: ReferralPacket) -> bytes:
    response = client.get(f"/api/v1/referrals/{packet.pk}/download")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def decide(moderator: Any, code: str, outcome: str = "remove") -> Decision:
    """A message case flagged `code`, claimed and decided by the moderator."""
    make_case(kind="message", category=code)
    case = case_claim_next(user=moderator)
    return decision_record(
        case=case,
        moderator=moderator,
        outcome=outcome,
        categories=[HarmCategory.objects.get(code=code)],
        rationale="synthetic",
    )


def today() -> Period:
    return parse_period(timezone.now().date().isoformat(), timezone.now().date().isoformat())


def drafted_packet(moderator: Any, lead: Any) -> ReferralPacket:
    """A routine referral of one decided case to Kent Police, drafted by `lead`."""
    return packet_draft(
        cases=[decided_case(moderator)],
        destination=police(),
        priority="routine",
        summary="s",
        actor=lead,
        drafted_by=lead,
    )


def submitted_packet(moderator: Any, lead: Any) -> ReferralPacket:
    """`drafted_packet`, submitted for a second lead's approval."""
    packet = drafted_packet(moderator, lead)
    packet_submit(packet=packet, lead=lead)
    return packet
