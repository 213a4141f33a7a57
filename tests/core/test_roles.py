from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from core.roles import ADMIN, MODERATOR, SAFETY_LEAD


def _perms(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


@pytest.mark.django_db
class RoleTests:
    def test_the_three_roles_exist_after_migrate(self) -> None:
        assert set(Group.objects.values_list("name", flat=True)) >= {MODERATOR, SAFETY_LEAD, ADMIN}

    def test_moderators_review_but_do_not_configure(self) -> None:
        perms = _perms(MODERATOR)
        assert {
            "moderation.claim_case",
            "moderation.decide_case",
            "moderation.reveal_media",
            "principles.view_principle",
        } <= perms
        assert "moderation.view_all_cases" not in perms
        assert "moderation.add_hashlist" not in perms
        assert "moderation.view_hashlist" not in perms  # leads' business (#20 probe finding)
        assert not any(p.startswith("reports.") for p in perms)

    def test_leads_see_every_case_and_the_audit_log(self) -> None:
        perms = _perms(SAFETY_LEAD)
        assert {
            "moderation.view_all_cases",
            "moderation.reassign_case",
            "core.view_auditevent",
        } <= perms
        assert "moderation.add_hashlist" not in perms

    def test_admins_configure_but_nobody_may_edit_the_audit_log(self) -> None:
        perms = _perms(ADMIN)
        assert {
            "moderation.add_hashlist",
            "moderation.change_hashlist",
            "principles.change_principle",
            "core.add_apitoken",
        } <= perms
        for role in (MODERATOR, SAFETY_LEAD, ADMIN):
            assert not {"core.change_auditevent", "core.delete_auditevent"} & _perms(role)
