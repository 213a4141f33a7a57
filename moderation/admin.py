"""Django admin for reference data (rota). Workflows with audit live in the console pages."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.audit import audit_record

from .models import OnCallOverride, OnCallShift


class _AuditedAdmin(admin.ModelAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            verb=f"{obj._meta.model_name}.saved",
            obj=obj,
            data={"changed": list(form.changed_data)},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        audit_record(
            actor=request.user,
            verb=f"{obj._meta.model_name}.deleted",
            obj=obj,
            data={"repr": str(obj)},
        )
        super().delete_model(request, obj)


@admin.register(OnCallShift)
class OnCallShiftAdmin(_AuditedAdmin):
    list_display = ("user", "weekday", "starts", "ends", "tier")
    list_filter = ("weekday", "tier")


@admin.register(OnCallOverride)
class OnCallOverrideAdmin(_AuditedAdmin):
    list_display = ("user", "starts_at", "ends_at", "tier", "reason")
