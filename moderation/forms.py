from __future__ import annotations

from django import forms

from .models import HashList


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
    file = forms.FileField(help_text="CSV: hash,category,metadata (metadata: JSON object).")
