"""What the provider's claims mean here: the console role, and whether MFA was used."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from core.roles import ADMIN, MODERATOR, SAFETY_LEAD

# Someone in several mapped groups gets the highest of their roles.
_PRECEDENCE = (ADMIN, SAFETY_LEAD, MODERATOR)


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """A claim as a list of strings: providers send groups as a list, some as one string."""
    value = claims.get(name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def role_from_claims(claims: dict[str, Any]) -> str | None:
    """The console role the provider's groups give, or None when no group is mapped."""
    role_map: dict[str, str] = settings.SAFEGUARD_OIDC_ROLE_MAP
    roles = {
        role_map[group]
        for group in claim_values(claims, settings.SAFEGUARD_OIDC_GROUPS_CLAIM)
        if group in role_map
    }
    return next((role for role in _PRECEDENCE if role in roles), None)


def mfa_asserted(claims: dict[str, Any]) -> bool:
    """True when the ID token says the person used more than one factor at this sign-in:
    an `amr` value (RFC 8176) or the `acr` the operator configured for it."""
    amr = set(claim_values(claims, "amr"))
    if amr & set(settings.SAFEGUARD_OIDC_MFA_AMR):
        return True
    acr = claims.get("acr")
    return isinstance(acr, str) and acr in settings.SAFEGUARD_OIDC_MFA_ACR
