from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from principles.models import HarmCategory

from .models import Decision, HashImport, HashList


class HashListForm(forms.Form):
    name = forms.CharField(max_length=100)
    provider = forms.ChoiceField(choices=HashList.Provider.choices)
    algorithm = forms.ChoiceField(choices=HashList.Algorithm.choices)
    threshold = forms.IntegerField(
        min_value=0,
        max_value=31,
        required=False,
        help_text="Hamming distance; 0 for exact lists. PDQ ≤ 31, pHash/dHash ≤ 10.",
    )
    verified = forms.BooleanField(
        required=False,
        help_text="Entries verified by the provider (allows actioning matches without viewing).",
    )


class HashImportForm(forms.Form):
    file = forms.FileField(help_text="See the formats below.")
    format = forms.ChoiceField(
        choices=HashImport.Format.choices, initial=HashImport.Format.CSV, required=False
    )
    sync = forms.BooleanField(
        required=False,
        help_text="Withdraw the list's entries that the file doesn't hold.",
    )


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(choices=Decision.Outcome.choices)
    categories = forms.ModelMultipleChoiceField(
        queryset=HarmCategory.objects.all(), to_field_name="code", required=False
    )
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=20000
    )
    claimed_at = forms.CharField(widget=forms.HiddenInput, required=False)


class BulkDecisionForm(forms.Form):
    outcome = forms.ChoiceField(
        choices=[
            (Decision.Outcome.REMOVE_AND_REPORT, "Remove and report"),
            (Decision.Outcome.REMOVE, "Remove"),
        ]
    )
    rationale = forms.CharField(required=False, max_length=2000)
    # Bulk action is irreversible for many cases at once: the moderator confirms having read
    # the match evidence, and the page asks once more with the count.
    confirm = forms.BooleanField(
        label="I have checked the match evidence of every selected case",
        error_messages={"required": "Confirm that you checked the match evidence."},
    )


class ExposureLiftForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True, groups__name="Moderator")
    )
    extra_reveals = forms.IntegerField(min_value=1, max_value=200, initial=10)
    reason = forms.CharField(max_length=500)
