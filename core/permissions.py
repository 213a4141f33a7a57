"""Shared DRF permission classes. Per-resource tables live in each app's permissions.py."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request

from .models import ApiToken


class ReadPermission(DjangoModelPermissions):
    """DjangoModelPermissions that also requires the `view_` permission for GET (DRF doesn't)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


def is_platform_request(request: Request) -> bool:
    auth = getattr(request, "auth", None)
    return isinstance(auth, ApiToken) and auth.scope == ApiToken.Scope.PLATFORM


class HasPerm:
    """Deny unless the console user has one model permission (platform tokens never do).

    With `object_level`, object checks ask for the permission on the object itself
    (django-guardian), so a model-level grant alone does not open a given object.
    """

    perm = ""
    object_level = False

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.perm))

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if self.object_level:
            return bool(request.user.has_perm(self.perm, obj))
        return self.has_permission(request, view)
