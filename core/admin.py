from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import ApiToken, AuditEvent
from .tokens import api_token_revoke


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only; nobody edits or deletes it, admins included."""

    list_display = ("id", "created_at", "actor_label", "verb", "object_type", "object_id")
    list_filter = ("verb", "object_type")
    search_fields = ("actor_label", "object_id", "verb")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.action(description="Revoke the selected tokens")
def revoke_tokens(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: Any) -> None:
    for token in queryset.filter(revoked_at__isnull=True):
        api_token_revoke(token=token, actor=request.user)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    actions = [revoke_tokens]
    list_display = (
        "name",
        "prefix",
        "user",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = (
        "name",
        "prefix",
        "key_hash",
        "user",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are shown once: issue them on the API tokens page or the CLI

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # revoke instead, so the audit trail keeps the token
