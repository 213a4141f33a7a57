"""The People pages (admins): everyone who uses the console, with role, two-factor state and
last login; invite, change role, deactivate or reactivate, reset two-factor authentication.
And the invitee's page that sets their first password from the one-time link.

Thin views over `core.people`; a refused action comes back as a message on the person's
page (`core.pages.refusal_redirects_to`). Platform service accounts are not people: 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required, permission_required
from django.contrib.auth.forms import SetPasswordForm
from django.db import transaction
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .enrolment import enrolment_grant_from_invitation, enrolment_link_issue, enrolment_needs_link
from .errors import DomainError
from .forms import ConfirmForm, InviteForm, ResetTwoFactorForm, RoleForm
from .lockout import login_lockouts, login_unlock
from .models import ApiToken, AuditEvent
from .pages import refusal_redirects_to
from .people import (
    invitation_person,
    people_list,
    person_accept_invitation,
    person_change_role,
    person_deactivate,
    person_invitation_renew,
    person_invite,
    person_reactivate,
    person_reset_two_factor,
    person_roles,
    two_factor_enrolled,
)
from .roles import ROLE_NAMES

User = get_user_model()

# The invitation token moves from the link into the session, and the page is shown at a URL
# without it, so it cannot leak through the Referer header (as Django's password reset does).
_INVITATION_SESSION_KEY = "_safeguard_invitation_token"
_LINK_PLACEHOLDER = "set-password"
_HISTORY = 30


def _get_person(username: str) -> Any:
    return get_object_or_404(
        User.objects.exclude(api_tokens__scope=ApiToken.Scope.PLATFORM), username=username
    )


def _form_error(form: Form, exc: DomainError) -> None:
    """Show a service's refusal on the field it names (or above the form)."""
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _index_page(request: HttpRequest, form: InviteForm) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    return render(
        request,
        "core/people.html",
        {"nav": "people", "people": people_list(query=query), "q": query, "form": form},
    )


@require_GET
@permission_required("auth.view_user", raise_exception=True)
def index(request: HttpRequest) -> HttpResponse:
    return _index_page(request, InviteForm())


@never_cache
@require_POST
@permission_required("auth.add_user", raise_exception=True)
def invite(request: HttpRequest) -> HttpResponse:
    """Create the person and show their set-password link, once: it is not stored anywhere
    it could be shown again (a new link can be made until they set a password)."""
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = person_invite(actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            _form_error(form, exc)
        else:
            return render(
                request, "core/person_invited.html", {"nav": "people", "invitation": invitation}
            )
    return _index_page(request, form)


@require_GET
@permission_required("auth.view_user", raise_exception=True)
def detail(request: HttpRequest, username: str) -> HttpResponse:
    person = _get_person(username)
    roles = person_roles(person)
    history = AuditEvent.objects.filter(object_type="auth.user", object_id=str(person.pk))
    return render(
        request,
        "core/person.html",
        {
            "nav": "people",
            "person": person,
            "roles": sorted(roles),
            "role_form": RoleForm(initial={"role": next(iter(roles)) if len(roles) == 1 else ""}),
            "role_names": ROLE_NAMES,
            "two_factor_enrolled": two_factor_enrolled(person),
            "enrolment_needs_link": enrolment_needs_link(person),
            "lockouts": login_lockouts(person),
            "is_self": person.pk == request.user.pk,
            "tokens": ApiToken.objects.filter(user=person).order_by("-created_at"),
            "history": history.order_by("-id")[:_HISTORY],
        },
    )


@require_POST
@permission_required("auth.change_user", raise_exception=True)
@refusal_redirects_to("core:person", "username")
def change_role(request: HttpRequest, username: str) -> HttpResponse:
    person = _get_person(username)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Choose one role: {', '.join(ROLE_NAMES)}.")
    elif person_change_role(actor=request.user, person=person, role=form.cleaned_data["role"]):
        messages.success(request, f"{person.get_username()} is now {form.cleaned_data['role']}.")
    else:
        messages.info(request, f"{person.get_username()} already had that role.")
    return redirect("core:person", username=username)


@require_POST
@permission_required("auth.change_user", raise_exception=True)
@refusal_redirects_to("core:person", "username")
def deactivate(request: HttpRequest, username: str) -> HttpResponse:
    person = _get_person(username)
    if not ConfirmForm(request.POST).is_valid():
        messages.error(request, "Tick the box to confirm the deactivation.")
    else:
        ended = person_deactivate(actor=request.user, person=person)
        messages.success(
            request,
            f"{person.get_username()} is deactivated: they cannot log in, their API tokens "
            f"are revoked and {ended} session{'s' if ended != 1 else ''} ended.",
        )
    return redirect("core:person", username=username)


@require_POST
@permission_required("auth.change_user", raise_exception=True)
@refusal_redirects_to("core:person", "username")
def reactivate(request: HttpRequest, username: str) -> HttpResponse:
    person = _get_person(username)
    person_reactivate(actor=request.user, person=person)
    messages.success(request, f"{person.get_username()} can log in again.")
    return redirect("core:person", username=username)


@require_POST
@permission_required("auth.change_user", raise_exception=True)
@refusal_redirects_to("core:person", "username")
def reset_two_factor(request: HttpRequest, username: str) -> HttpResponse:
    person = _get_person(username)
    form = ResetTwoFactorForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason and tick the box to confirm the reset.")
    else:
        person_reset_two_factor(
            actor=request.user, person=person, reason=form.cleaned_data["reason"]
        )
        messages.success(
            request,
            f"{person.get_username()}'s two-factor authentication is reset and their sessions "
            "ended: they set up a new device at their next login.",
        )
    return redirect("core:person", username=username)


@require_POST
@permission_required("auth.change_user", raise_exception=True)
@refusal_redirects_to("core:person", "username")
def unlock(request: HttpRequest, username: str) -> HttpResponse:
    """Clear a person's failed logins (axes lockouts and the soft limit); audited."""
    person = _get_person(username)
    login_unlock(actor=request.user, person=person, reason=request.POST.get("reason", ""))
    messages.success(request, f"{person.get_username()} can log in again from anywhere.")
    return redirect("core:person", username=username)


@never_cache
@require_POST
@permission_required("auth.change_user", raise_exception=True)
@refusal_redirects_to("core:person", "username")
def issue_enrolment_link(request: HttpRequest, username: str) -> HttpResponse:
    """A one-time link with which a lead or admin sets up their authenticator (shown once)."""
    person = _get_person(username)
    link, token = enrolment_link_issue(actor=request.user, person=person)
    url = request.build_absolute_uri(reverse("core:enrolment_link", args=[token]))
    return render(
        request,
        "core/person_enrolment_link.html",
        {"nav": "people", "person": person, "link": link, "url": url},
    )


@never_cache
@require_POST
@permission_required("auth.add_user", raise_exception=True)
@refusal_redirects_to("core:person", "username")
def renew_invitation(request: HttpRequest, username: str) -> HttpResponse:
    invitation = person_invitation_renew(actor=request.user, person=_get_person(username))
    return render(request, "core/person_invited.html", {"nav": "people", "invitation": invitation})


@login_not_required
@sensitive_post_parameters("new_password1", "new_password2")
@never_cache
@require_http_methods(["GET", "POST"])
def set_password(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The invitee sets their first password, then logs in (and enrols a second factor).

    Only for someone logged out: a logged-in person opening another's link gets 403. A wrong,
    expired or used link sends them to the login page with a message.
    """
    if request.user.is_authenticated:
        return render(request, "core/set_password.html", {"signed_in": True}, status=403)
    if token != _LINK_PLACEHOLDER:
        person = invitation_person(uidb64=uidb64, token=token)
        if person is not None:
            request.session[_INVITATION_SESSION_KEY] = token
            return redirect("core:set_password", uidb64=uidb64, token=_LINK_PLACEHOLDER)
    else:
        stored = request.session.get(_INVITATION_SESSION_KEY, "")
        person = invitation_person(uidb64=uidb64, token=stored)
    if person is None:
        messages.error(
            request,
            "That link is wrong, has expired or was already used. Ask an admin for a new one.",
        )
        return redirect("core:login")
    form = SetPasswordForm(person, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            person_accept_invitation(person=person, password=form.cleaned_data["new_password1"])
        except DomainError as exc:
            _form_error(form, exc)
        else:
            request.session.pop(_INVITATION_SESSION_KEY, None)
            # The admin's invitation is this person's enrolment link too: after logging in,
            # this browser may set up their authenticator.
            with transaction.atomic():
                enrolment_grant_from_invitation(person=person, session=request.session)
            messages.success(request, "Your password is set. Log in with it now.")
            return redirect("core:login")
    return render(request, "core/set_password.html", {"form": form, "person": person})
