"""Who may use the HMA routes. HMA itself leaves authentication to a proxy; Safeguard requires
a token (or a console session) on every route and denies by default.

| routes                          | platform token | console user                              |
| ------------------------------- | -------------- | ----------------------------------------- |
| POST /h/hash, /m/* (matching)   | yes            | moderation.view_knownhash (leads, admins) |
| GET /c/* (banks, their content) | no             | moderation.view_knownhash (leads, admins) |
| POST, PUT, DELETE /c/*          | no             | moderation.change_hashlist (admins)       |

A lookup tells whether something is in the lists, which is what reading known hashes means;
moderators see matches on their cases, not the lists. Curation writes change hash lists, an
admin's job. Console users act with their own permissions, with a console token
(``create_api_token NAME --user USERNAME``) or their session.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from core.permissions import is_platform_request

READ_LISTS = "moderation.view_knownhash"
CHANGE_LISTS = "moderation.change_hashlist"


def _console_user_may(request: Request, perm: str) -> bool:
    user = request.user
    return bool(
        user and user.is_authenticated and not is_platform_request(request) and user.has_perm(perm)
    )


class CanMatch:
    """Hashing and matching: platforms, and console users who may read list entries."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        return is_platform_request(request) or _console_user_may(request, READ_LISTS)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)


class CanCurate:
    """Banks: reads for console users who may read list entries, writes for those who may
    change lists. Never platform tokens."""

    def has_permission(self, request: Request, view: Any) -> bool:
        perm = READ_LISTS if request.method in ("GET", "HEAD", "OPTIONS") else CHANGE_LISTS
        return _console_user_may(request, perm)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)
