"""Claims → role and MFA (sso.mapping)."""

from __future__ import annotations

from typing import Any

import pytest

from core.roles import ADMIN, MODERATOR, SAFETY_LEAD
from sso.mapping import claim_values, mfa_asserted, role_from_claims

ROLE_MAP = {"mods": MODERATOR, "leads": SAFETY_LEAD, "admins": ADMIN}


@pytest.fixture(autouse=True)
def _mapping(settings: Any) -> None:
    settings.SAFEGUARD_OIDC_ROLE_MAP = ROLE_MAP
    settings.SAFEGUARD_OIDC_GROUPS_CLAIM = "groups"
    settings.SAFEGUARD_OIDC_MFA_AMR = ["mfa", "otp", "hwk"]
    settings.SAFEGUARD_OIDC_MFA_ACR = ["gold"]


class RoleMappingTests:
    @pytest.mark.parametrize(
        ("groups", "role"),
        [
            (["mods"], MODERATOR),
            (["mods", "leads"], SAFETY_LEAD),
            (["admins", "mods"], ADMIN),
            ("leads", SAFETY_LEAD),
            (["payroll"], None),
            ([], None),
            (None, None),
            ([{"name": "admins"}, 7], None),
            (["Admins"], None),  # group names match exactly
        ],
    )
    def test_the_highest_mapped_group_gives_the_role(self, groups: Any, role: Any) -> None:
        assert role_from_claims({"groups": groups}) == role

    def test_the_groups_claim_name_is_configurable(self, settings: Any) -> None:
        settings.SAFEGUARD_OIDC_GROUPS_CLAIM = "roles"
        assert role_from_claims({"roles": ["admins"], "groups": ["mods"]}) == ADMIN

    def test_claim_values_ignores_what_is_not_a_string(self) -> None:
        assert claim_values({"x": ["a", 1, None, "b"]}, "x") == ["a", "b"]
        assert claim_values({"x": {"a": 1}}, "x") == []


class MfaTests:
    @pytest.mark.parametrize(
        ("claims", "asserted"),
        [
            ({"amr": ["pwd", "mfa"]}, True),
            ({"amr": ["hwk"]}, True),
            ({"amr": "otp"}, True),
            ({"amr": ["pwd"]}, False),
            ({}, False),
            ({"acr": "gold"}, True),
            ({"acr": "silver"}, False),
            ({"acr": ["gold"]}, False),
        ],
    )
    def test_amr_or_the_configured_acr_asserts_mfa(
        self, claims: dict[str, Any], asserted: bool
    ) -> None:
        assert mfa_asserted(claims) is asserted
