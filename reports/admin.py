"""Admin for referral destinations; every save is audited.

Imports models and core's audit trail.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.audit import audit_record

from .models import Destination


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "police_force", "jurisdiction", "mode", "enabled")
    list_filter = ("kind", "mode", "enabled")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            verb="destination.saved",
            obj=obj,
            data={"changed": list(form.changed_data), "mode": obj.mode, "enabled": obj.enabled},
        )
