"""Home page panel for safety leads: referral packets that need someone.

Imports models only.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Count

from reports.models import ReferralPacket

register = template.Library()


@register.inclusion_tag("reports/_packets_panel.html", takes_context=True)
def packets_panel(context: dict[str, Any]) -> dict[str, Any]:
    user = context["request"].user
    counts = dict(ReferralPacket.objects.values_list("status").annotate(n=Count("id")))
    awaiting = (
        ReferralPacket.objects.filter(status="awaiting_approval")
        .exclude(drafted_by=user)
        .select_related("destination")[:10]
    )
    return {
        "counts": counts,
        "awaiting": awaiting,
        "drafts": counts.get("draft", 0),
        "ready": counts.get("ready", 0),
    }
