"""Input forms of the people and API tokens pages: they parse and check input only; the rules
(last admin, self-demotion, unique names) live in `core.people` and `core.tokens`."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from .models import ApiToken
from .roles import ROLE_NAMES
from .tokens import NAME_MAX_LENGTH, platform_accounts

User = get_user_model()

ROLE_CHOICES = [(role, role) for role in ROLE_NAMES]


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(help_text="The set-password link is sent here.")
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField()


class ResetTwoFactorForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    confirm = forms.BooleanField()


class TokenIssueForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH, help_text="Who or what uses it, e.g. “acme-intake”."
    )
    scope = forms.ChoiceField(
        choices=[
            (ApiToken.Scope.PLATFORM, "Platform: submits items and reports"),
            (ApiToken.Scope.CONSOLE, "Acting as a person, with their permissions"),
        ],
        widget=forms.RadioSelect,
        initial=ApiToken.Scope.PLATFORM,
    )
    platform_account = forms.ModelChoiceField(
        queryset=User.objects.none(),
        required=False,
        empty_label="A new platform account",
        label="Platform account (platform tokens)",
        help_text="Choose a platform's existing account to rotate its key: it keeps seeing "
        "what it submitted before.",
    )
    user = forms.ModelChoiceField(
        queryset=User.objects.none(),
        required=False,
        empty_label="—",
        label="Acting as (person tokens)",
    )
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        label="Expires on (optional)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accounts = platform_accounts()
        self.fields["platform_account"].queryset = accounts
        self.fields["platform_account"].label_from_instance = lambda u: u.get_username()
        self.fields["user"].queryset = (
            User.objects.filter(is_active=True, groups__name__in=ROLE_NAMES)
            .exclude(pk__in=accounts.values("pk"))
            .distinct()
            .order_by("username")
        )
        self.fields["user"].label_from_instance = lambda u: (
            f"{u.get_username()} ({u.get_full_name()})" if u.get_full_name() else u.username
        )
        zone = timezone.get_current_timezone_name()
        self.fields["expires_on"].help_text = f"From 00:00 on this day ({zone}) the key is refused."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("scope") == ApiToken.Scope.CONSOLE:
            if not data.get("user"):
                self.add_error("user", "Choose the person the token acts as.")
            data["platform_account"] = None
        else:
            data["user"] = None
        return data

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return timezone.make_aware(datetime.combine(day, time.min)) if day else None
