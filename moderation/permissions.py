"""Who may do what, per resource. One table per resource; object checks in selectors.

Items (API)
| operation            | platform token                 | console user                      |
| POST /items          | yes                            | moderation.add_item (admins)      |
| POST /items/batch    | yes                            | moderation.add_item (admins)      |
| GET /items/{id}      | only items it submitted        | moderation.view_item + case visible |
| POST /reports        | yes                            | moderation.add_flag (admins)      |
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from core.permissions import is_platform_request


class CanSubmitItems:
    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        return is_platform_request(request) or request.user.has_perm("moderation.add_item")

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)


class CanSubmitReports:
    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        return is_platform_request(request) or request.user.has_perm("moderation.add_flag")

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)


class CanReadItems:
    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        return is_platform_request(request) or request.user.has_perm("moderation.view_item")

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)
