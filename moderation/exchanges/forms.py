"""The console's exchange form. Credential inputs are write-only: never rendered with a value,
blank on edit means "keep what is stored"."""

from __future__ import annotations

from typing import Any

from django import forms

from moderation.models import Exchange, HashList

from .configure import ExchangeSettings
from .programmes import programme_for

CREDENTIAL_FIELDS = (
    "username",
    "password",
    "api_token",
    "subscription_key",
    "fetch_function_key",
    "feedback_function_key",
)


def _secret(label: str, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class ExchangeForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Exchange.Kind.choices, label="Programme")
    enabled = forms.BooleanField(required=False, help_text="Fetch on schedule.")
    hash_list = forms.ModelChoiceField(
        queryset=HashList.objects.order_by("name"),
        required=False,
        empty_label="— none —",
        help_text="The list fetched hashes go to (hashes of another algorithm are skipped).",
    )
    category_lists = forms.CharField(
        required=False,
        label="Lists by category",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, `label = list name` (e.g. `A1 = NCMEC A1`): hashes with that "
        "category or label go to that list instead.",
    )
    interval_minutes = forms.IntegerField(min_value=5, initial=60, label="Fetch every (minutes)")
    feedback_enabled = forms.BooleanField(
        required=False,
        label="Send feedback",
        help_text="StopNCII: send reviewers' verdicts on matches of its hashes.",
    )
    environment = forms.ChoiceField(required=False, label="NCMEC environment")
    privacy_group = forms.IntegerField(
        required=False, min_value=1, label="ThreatExchange privacy group"
    )
    base_url = forms.CharField(
        required=False,
        max_length=300,
        label="Base URL override",
        help_text="Only for a programme's test environment; https.",
    )
    username = _secret("Username", "NCMEC, Tech Against Terrorism.")
    password = _secret("Password", "NCMEC, Tech Against Terrorism.")
    api_token = _secret("App access token", "ThreatExchange: app id|secret.")
    subscription_key = _secret("Subscription key", "StopNCII.")
    fetch_function_key = _secret("FetchHashes function key", "StopNCII.")
    feedback_function_key = _secret("SubmitFeedback function key", "StopNCII, for feedback.")

    def __init__(self, *args: Any, exchange: Exchange | None = None, **kwargs: Any) -> None:
        if exchange is not None:
            kwargs.setdefault("initial", {}).update(_initial(exchange))
        super().__init__(*args, **kwargs)
        environments = programme_for(Exchange.Kind.NCMEC).ENVIRONMENTS  # type: ignore[attr-defined]
        self.fields["environment"].choices = [(name, name) for name in environments]
        self.fields["environment"].initial = "Industry"
        if exchange is not None:
            self.fields["kind"].disabled = True
            stored = "Stored" + (
                f" (set {exchange.credentials_updated_at:%Y-%m-%d %H:%M})"
                if exchange.credentials_updated_at
                else ""
            )
            for name in CREDENTIAL_FIELDS:
                if exchange.has_credentials:
                    self.fields[name].help_text += f" {stored}: blank keeps it."

    def clean_category_lists(self) -> dict[str, int]:
        mapping: dict[str, int] = {}
        lists = dict(HashList.objects.values_list("name", "pk"))
        for number, line in enumerate(self.cleaned_data["category_lists"].splitlines(), 1):
            if not line.strip():
                continue
            label, sep, list_name = line.partition("=")
            if not sep or not label.strip() or list_name.strip() not in lists:
                raise forms.ValidationError(
                    f"Line {number}: write `label = list name`, with the name of a hash list."
                )
            mapping[label.strip()] = lists[list_name.strip()]
        return mapping

    def exchange_settings(self) -> ExchangeSettings:
        data = self.cleaned_data
        return ExchangeSettings(
            name=data["name"],
            enabled=data["enabled"],
            hash_list=data["hash_list"],
            category_lists=data["category_lists"],
            interval_minutes=data["interval_minutes"],
            feedback_enabled=data["feedback_enabled"],
            options={
                k: v
                for k, v in {
                    "environment": data["environment"],
                    "privacy_group": data["privacy_group"],
                    "base_url": data["base_url"],
                }.items()
                if v
            },
        )

    def credentials(self) -> dict[str, str]:
        return {
            name: self.cleaned_data[name] for name in CREDENTIAL_FIELDS if self.cleaned_data[name]
        }

    def errors_text(self) -> str:
        return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in self.errors.items())


def _initial(exchange: Exchange) -> dict[str, Any]:
    names = dict(HashList.objects.values_list("pk", "name"))
    return {
        "name": exchange.name,
        "kind": exchange.kind,
        "enabled": exchange.enabled,
        "hash_list": exchange.hash_list_id,
        "category_lists": "\n".join(
            f"{label} = {names.get(pk, pk)}" for label, pk in exchange.category_lists.items()
        ),
        "interval_minutes": exchange.interval_minutes,
        "feedback_enabled": exchange.feedback_enabled,
        "environment": exchange.options.get("environment", "Industry"),
        "privacy_group": exchange.options.get("privacy_group"),
        "base_url": exchange.options.get("base_url", ""),
    }
