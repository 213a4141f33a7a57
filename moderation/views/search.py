"""The search page: cases by reference, external id, subject, hash (PDQ within a distance),
text, category, status and received dates, for anyone who may view cases. Results come from
`moderation.search`, which only ever returns cases the person may see; no media is shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from moderation.models import SavedFilter
from moderation.search import (
    PDQ_DEFAULT_DISTANCE,
    PDQ_MAX_DISTANCE,
    STATUS_CHOICES,
    CaseSearch,
    SearchFilters,
    SearchInputError,
    normalise_hash,
    parse_reference,
)
from moderation.views.queue import saved_filters_for
from principles.models import HarmCategory

_DATE = forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=500, label="Search")
    reference = forms.CharField(required=False, max_length=40, label="Case reference")
    external_id = forms.CharField(required=False, max_length=255, label="External id")
    subject = forms.CharField(required=False, max_length=255, label="Subject id or username")
    hash = forms.CharField(
        required=False,
        max_length=64,
        label="Hash",
        help_text="SHA-256, SHA-1, MD5, PDQ, pHash or dHash, in hex.",
    )
    distance = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=PDQ_MAX_DISTANCE,
        label="PDQ distance",
        help_text=f"Bits (0 = exact; default {PDQ_DEFAULT_DISTANCE}).",
    )
    category = forms.ChoiceField(required=False, label="Category")
    status = forms.ChoiceField(
        required=False, choices=[("", "Any"), *STATUS_CHOICES], label="Status"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [
            ("", "Any"),
            *HarmCategory.objects.values_list("code", "label"),
        ]
        # `from` is a Python keyword, so these two are added by name.
        for name, label in (("from", "Received from"), ("to", "Received to")):
            self.fields[name] = forms.DateField(required=False, label=label, widget=_DATE)

    def clean_reference(self) -> str:
        value: str = self.cleaned_data["reference"].strip()
        if value and parse_reference(value, bare_number=True) is None:
            raise forms.ValidationError("A case reference looks like SG-000123.")
        return value

    def clean_hash(self) -> str:
        value: str = self.cleaned_data["hash"]
        if not value.strip():
            return ""
        try:
            return normalise_hash(value)
        except SearchInputError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("from"), data.get("to")
        if start and end and start > end:
            self.add_error("to", "The end date is before the start date.")
        return data

    def filters(self) -> SearchFilters:
        data = self.cleaned_data
        distance = data.get("distance")
        return SearchFilters(
            reference=data["reference"],
            external_id=data["external_id"].strip(),
            subject=data["subject"].strip(),
            hash=data["hash"],
            distance=PDQ_DEFAULT_DISTANCE if distance is None else distance,
            category=data["category"],
            status=data["status"],
            received_from=data.get("from"),
            received_to=data.get("to"),
        )


@require_GET
@permission_required("moderation.view_case", raise_exception=True)
def search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    page, hits, searched = None, [], False
    if form.is_bound and form.is_valid():
        case_search = CaseSearch(request.user, form.cleaned_data["q"], form.filters())
        if not case_search.is_empty:
            searched = True
            page, hits = case_search.page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "moderation/search.html",
        {
            "nav": "search",
            "form": form,
            "page": page,
            "hits": hits,
            "searched": searched,
            "base_query": query.urlencode(),
            "saved_filters": saved_filters_for(request.user),
            "saved_page": SavedFilter.Page.SEARCH,
        },
    )
