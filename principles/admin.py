from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from core.audit import audit_record

from .models import CHECKED_PROVENANCES, HarmCategory, Principle
from .services import EDITABLE_FIELDS, principle_update


class PrincipleAdminForm(forms.ModelForm):
    source_url = forms.URLField(max_length=200, assume_scheme="https")

    class Meta:
        model = Principle
        fields = EDITABLE_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        provenance, checked = cleaned.get("provenance"), cleaned.get("checked")
        if provenance and checked is not None and checked != (provenance in CHECKED_PROVENANCES):
            raise forms.ValidationError(
                "“Checked” must be ticked exactly when the provenance says the wording was "
                "checked against a published text (the Voluntary Principles or the Interim Code)."
            )
        return cleaned


@admin.register(Principle)
class PrincipleAdmin(admin.ModelAdmin):
    form = PrincipleAdminForm
    list_display = ("number", "title", "theme", "provenance", "checked", "data_version")
    readonly_fields = ("number", "data_version")
    fields = ("number", *EDITABLE_FIELDS, "data_version")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # exactly twelve, loaded from the registry data file

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Principle, form: Any, change: bool) -> None:
        changes = {f: form.cleaned_data[f] for f in EDITABLE_FIELDS if f in form.changed_data}
        principle_update(principle=obj, actor=request.user, **changes)


@admin.register(HarmCategory)
class HarmCategoryAdmin(admin.ModelAdmin):
    list_display = ("code", "label", "default_priority", "sla", "is_illegal_content")
    filter_horizontal = ("principles",)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        audit_record(
            actor=request.user,
            verb="harm_category.saved",
            obj=obj,
            data={
                "code": obj.code,
                "default_priority": obj.default_priority,
                "sla_seconds": obj.sla.total_seconds(),
                "principles": obj.principle_numbers(),
                "changed": list(form.changed_data),
            },
        )
