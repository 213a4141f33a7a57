"""The three console roles and their model permissions, as one readable table.

Groups are created by a migration (core 0002) and kept in sync after every `migrate`, so a
permission added by a later migration reaches its roles without a hand-written data migration.
Object-level access (restricted cases, packets) is granted per object with django-guardian on
top of these model permissions.
"""

from __future__ import annotations

from typing import Any

MODERATOR = "Moderator"
SAFETY_LEAD = "Safety lead"
ADMIN = "Admin"
ROLE_NAMES = (MODERATOR, SAFETY_LEAD, ADMIN)

_MODERATOR_PERMS = {
    "principles.view_principle",
    "principles.view_harmcategory",
    "moderation.view_item",
    "moderation.view_media",
    "moderation.reveal_media",
    "moderation.view_flag",
    "moderation.view_match",
    "moderation.view_case",
    "moderation.claim_case",
    "moderation.decide_case",
    "moderation.mark_immediate_risk",
    "moderation.view_decision",
}
_LEAD_PERMS = _MODERATOR_PERMS | {
    "moderation.view_all_cases",
    "moderation.reassign_case",
    "moderation.review_decision",
    "moderation.work_escalations",
    "moderation.view_escalation",
    "moderation.view_reveal",
    "moderation.view_knownhash",
    # Hash lists, their provenance and import progress are the leads' to manage: a moderator
    # sees which list matched on the case itself and needs nothing more (probe finding, #20).
    "moderation.view_hashlist",
    "core.view_auditevent",
    "reports.*",
    # Destinations are configured by admins; leads pick them (view only).
    "-reports.add_destination",
    "-reports.change_destination",
    "-reports.delete_destination",
}
_ADMIN_PERMS = {p for p in _LEAD_PERMS if not p.startswith("-")} | {
    "principles.*",
    "moderation.*",
    "core.view_apitoken",
    "core.add_apitoken",
    "core.change_apitoken",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.view_group",
}
# Never granted to any role: editing or deleting audit events (the log is append-only).
_FORBIDDEN = {"core.change_auditevent", "core.delete_auditevent", "core.add_auditevent"}

ROLE_PERMISSIONS: dict[str, set[str]] = {
    MODERATOR: _MODERATOR_PERMS,
    SAFETY_LEAD: _LEAD_PERMS,
    ADMIN: _ADMIN_PERMS,
}


def _expand(perm_model: Any, names: set[str]) -> list[Any]:
    """`app.codename`, `app.*` (every permission of the app) and `-app.codename` (except)."""
    wanted = []
    for perm in perm_model.objects.select_related("content_type"):
        label = f"{perm.content_type.app_label}.{perm.codename}"
        if label in _FORBIDDEN or f"-{label}" in names:
            continue
        if label in names or f"{perm.content_type.app_label}.*" in names:
            wanted.append(perm)
    return wanted


def sync_roles(group_model: Any, perm_model: Any) -> None:
    """Create the role groups and set exactly the permissions the table gives them."""
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(_expand(perm_model, names))


def sync_roles_after_migrate(sender: Any, **kwargs: Any) -> None:
    """After migrate (and after a test flush), make sure every app's permissions exist, then
    give the roles theirs. post_migrate runs app by app, so without the first step the roles
    would miss the permissions of apps whose signal has not run yet."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    if sender.name != "core":
        return
    using = kwargs.get("using", "default")
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    sync_roles(Group, Permission)


def user_roles(user: Any) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_safeguard_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
        user._safeguard_roles = cached
    return cached


def is_moderator(user: Any) -> bool:
    return bool(user_roles(user) & {MODERATOR, SAFETY_LEAD, ADMIN})


def is_lead(user: Any) -> bool:
    return bool(user_roles(user) & {SAFETY_LEAD, ADMIN})


def is_admin(user: Any) -> bool:
    return ADMIN in user_roles(user)
