"""Which referral packets a user may see: object permissions, never global ones.

Imports models only: the HTML views and the API both filter through it.
"""

from __future__ import annotations

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from ..models import ReferralPacket


def packets_for(user: object) -> QuerySet[ReferralPacket]:
    """The packets `user` holds `view_referralpacket` on (granted per packet to groups)."""
    return get_objects_for_user(
        user, "reports.view_referralpacket", klass=ReferralPacket, accept_global_perms=False
    )
