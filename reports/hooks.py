"""What reports plugs into moderation: the follow-up referral after a 999 call and the
`draft_referral` rule action. `ReportsConfig.ready()` registers them through `moderation.hooks`,
so moderation never imports reports.

Imports models, `reports.packets` and moderation's models.
"""

from __future__ import annotations

from typing import Any

from core.audit import Actor
from moderation.models import Case, Escalation

from .destinations import police_destination
from .models import Destination, ReferralPacket
from .packets import packet_draft


def draft_after_call(*, escalation: Escalation, actor: Actor) -> None:
    """After a 999 call is recorded, draft the follow-up referral to that force."""
    destination = police_destination(escalation.police_force)
    summary = (
        f"Follow-up to a 999 call made {escalation.called_at:%Y-%m-%d %H:%M} UTC to "
        f"{escalation.police_force} (incident reference "
        f"{escalation.incident_reference}) about case {escalation.case.reference}: "
        f"{escalation.reason}"
    )
    packet_draft(
        cases=[escalation.case],
        destination=destination,
        priority=ReferralPacket.Priority.IMMEDIATE,
        summary=summary,
        actor=actor,
        drafted_by=None,
        escalation=escalation,
        reason="follow-up to a 999 call",
    )


def draft_referral_validate(params: dict[str, Any]) -> list[str]:
    """The rule action's parameters: an enabled destination by name, a known priority."""
    name = params.get("destination")
    if not isinstance(name, str) or not name:
        return ["draft_referral needs a destination (its name)"]
    destination = Destination.objects.filter(name=name).first()
    if destination is None:
        return [f"draft_referral: no destination named {name!r}"]
    if not destination.enabled:
        return [f"draft_referral: destination {name!r} is disabled"]
    priority = params.get("priority", "urgent")
    if priority not in ReferralPacket.Priority.values:
        return [f"draft_referral: unknown priority {priority!r}"]
    return []


def draft_referral_describe() -> dict[str, Any]:
    """The rule builder's pickers for draft_referral: the enabled destinations (grouped by
    kind) and the referral priorities, as `draft_referral_validate` accepts them."""
    destinations = Destination.objects.filter(enabled=True).order_by("kind", "name")
    return {
        "label": "Draft a referral",
        "params": [
            {
                "name": "destination",
                "label": "Destination",
                "kind": "choice",
                "choices": [[d.name, d.name, d.get_kind_display()] for d in destinations],
            },
            {
                "name": "priority",
                "label": "Referral priority",
                "kind": "choice",
                "choices": [[v, label] for v, label in ReferralPacket.Priority.choices],
                "default": ReferralPacket.Priority.URGENT.value,
            },
        ],
    }


def draft_referral_apply(*, case: Case, params: dict[str, Any], actor: Actor, rule: Any) -> str:
    """Draft a referral of the case (no drafter: a lead submits it, a second lead approves)."""
    destination = Destination.objects.get(name=params["destination"])
    packet = packet_draft(
        cases=[case],
        destination=destination,
        priority=params.get("priority", "urgent"),
        actor=actor,
        summary=f"Drafted by rule {rule.name!r} for case {case.reference}; "
        "a safety lead completes the summary before approval.",
        reason=f"rule {rule.name!r}",
    )
    return f"referral {packet.reference} drafted to {destination.name}"
