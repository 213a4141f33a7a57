"""The API tokens page (admins): every token with its scope, owner, expiry and last use;
issue one (its key shown once, on the page that answers the form) and revoke one.

Thin views over `core.tokens`; refusals come back on the form or as a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .errors import DomainError
from .forms import ConfirmForm, TokenIssueForm
from .models import ApiToken
from .pages import refusal_redirects_to
from .tokens import api_token_create, api_token_revoke

_REVOKED_SHOWN = 50


def _index_page(request: HttpRequest, form: TokenIssueForm) -> HttpResponse:
    tokens = ApiToken.objects.select_related("user")
    return render(
        request,
        "core/tokens.html",
        {
            "nav": "tokens",
            "tokens": tokens.filter(revoked_at__isnull=True).order_by(
                F("expires_at").asc(nulls_last=True), "name"
            ),
            "revoked": tokens.filter(revoked_at__isnull=False).order_by("-revoked_at")[
                :_REVOKED_SHOWN
            ],
            "form": form,
        },
    )


@require_GET
@permission_required("core.view_apitoken", raise_exception=True)
def index(request: HttpRequest) -> HttpResponse:
    return _index_page(request, TokenIssueForm())


@never_cache
@require_POST
@permission_required("core.add_apitoken", raise_exception=True)
def issue(request: HttpRequest) -> HttpResponse:
    """Issue a token and answer with its key, once: only its SHA-256 is kept."""
    form = TokenIssueForm(request.POST)
    if form.is_valid():
        try:
            token, key = api_token_create(
                name=form.cleaned_data["name"],
                actor=request.user,
                user=form.cleaned_data["user"],
                platform_account=form.cleaned_data["platform_account"],
                expires_at=form.expires_at(),
            )
        except DomainError as exc:
            field = {"expires_at": "expires_on"}.get(exc.field or "", exc.field)
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            return render(
                request, "core/token_issued.html", {"nav": "tokens", "token": token, "key": key}
            )
    return _index_page(request, form)


@require_POST
@permission_required("core.change_apitoken", raise_exception=True)
@refusal_redirects_to("core:tokens")
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk)
    if not ConfirmForm(request.POST).is_valid():
        messages.error(request, f"Tick the box to confirm revoking {token.name}.")
    elif token.revoked_at is not None:
        messages.info(request, f"{token.name} was already revoked.")
    else:
        api_token_revoke(token=token, actor=request.user)
        messages.success(request, f"{token.name} is revoked: its key is refused from now on.")
    return redirect("core:tokens")
