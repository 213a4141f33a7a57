"""Two-factor authentication: TOTP enrolment with recovery codes, and verification."""

from __future__ import annotations

import math
import secrets

import segno
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import audit_record
from .enrolment import (
    EnrolmentRefused,
    enrolment_grant_consume,
    enrolment_granted,
    enrolment_link_check,
    enrolment_link_redeem,
)

RECOVERY_CODES = 10


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return "/"
    return target


def _second_factor_login(request: HttpRequest, device: object) -> None:
    """Mark the session as verified, then give it a new key: a session id seen before the
    second factor (on a shared machine, in a log) must not carry the verified session."""
    otp_login(request, device)
    request.session.cycle_key()


def two_factor_enrol(*, user: object) -> TOTPDevice:
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="authenticator", defaults={"confirmed": False}
    )
    return device


def two_factor_confirm(*, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm an enrolment with a first valid code; return fresh recovery codes."""
    if not device.verify_token(token.strip()):
        return None
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        static, _ = StaticDevice.objects.get_or_create(user=device.user, name="recovery")
        static.token_set.all().delete()
        StaticToken.objects.bulk_create([StaticToken(device=static, token=c) for c in codes])
        static.confirmed = True
        static.save(update_fields=["confirmed"])
        audit_record(actor=device.user, verb="two_factor.enrolled", obj=device, data={})
    return codes


@never_cache
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    """Enrol (first time) or verify (each login) the second factor."""
    user = request.user
    confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if confirmed is None:
        if not enrolment_granted(user=user, session=request.session):
            # A lead's or admin's authenticator is bound only through an admin-issued link
            # (core.enrolment): no secret is generated or shown before that.
            return render(
                request,
                "registration/two_factor_needs_link.html",
                {"pending_second_factor": True},
                status=403,
            )
        device = two_factor_enrol(user=user)
        if request.method == "POST":
            locked_for = _locked_for(device)
            with transaction.atomic():
                codes = two_factor_confirm(device=device, token=request.POST.get("token", ""))
                if codes is not None:
                    enrolment_grant_consume(user=user, session=request.session)
            if codes is not None:
                _second_factor_login(request, device)
                return render(
                    request,
                    "registration/two_factor_codes.html",
                    {"codes": codes, "next": _next(request)},
                )
            messages.error(
                request,
                _wrong_code(
                    locked_for,
                    "That code did not match. Check your device's clock and try the current code.",
                ),
            )
        uri = device.config_url
        return render(
            request,
            "registration/two_factor_setup.html",
            {
                "secret": _base32(device.bin_key),
                "uri": uri,
                "next": _next(request),
                "qr": segno.make(uri, error="m").svg_inline(scale=4, dark="#16202c"),
                "pending_second_factor": True,
            },
        )
    if request.method == "POST":
        locked_for = _locked_for(confirmed)
        token = request.POST.get("token", "").strip()
        for device in (confirmed, StaticDevice.objects.filter(user=user, confirmed=True).first()):
            if device is not None and device.verify_token(token):
                _second_factor_login(request, device)
                with transaction.atomic():
                    audit_record(
                        actor=user,
                        verb="two_factor.verified",
                        obj=device,
                        data={
                            "method": "recovery code"
                            if isinstance(device, StaticDevice)
                            else "totp"
                        },
                    )
                return redirect(_next(request))
        messages.error(request, _wrong_code(locked_for, "That code did not match."))
    return render(
        request,
        "registration/two_factor_verify.html",
        {"next": _next(request), "pending_second_factor": True},
    )


@never_cache
@require_http_methods(["GET", "POST"])
def enrolment_link(request: HttpRequest, token: str) -> HttpResponse:
    """An admin-issued enrolment link: shown with a button (link scanners that prefetch a GET
    must not spend it), redeemed by POST for the logged-in person it was issued to."""
    try:
        if request.method == "POST":
            enrolment_link_redeem(user=request.user, token=token, session=request.session)
            messages.success(request, "Link accepted: set up your authenticator now.")
            return redirect("core:two_factor")
        link = enrolment_link_check(user=request.user, token=token)
    except EnrolmentRefused as exc:
        return render(
            request,
            "registration/two_factor_enrolment_link.html",
            {"refused": exc.message, "pending_second_factor": True},
            status=404,
        )
    return render(
        request,
        "registration/two_factor_enrolment_link.html",
        {"link": link, "pending_second_factor": True},
    )


def _locked_for(device: TOTPDevice) -> int:
    """Seconds for which django-otp refuses every code, valid or not (0 if it does not). It
    throttles guesses: each failure doubles a lock-out, starting at one second."""
    allowed, data = device.verify_is_allowed()
    locked_until = (data or {}).get("locked_until")
    if allowed or locked_until is None:
        return 0
    return max(1, math.ceil((locked_until - timezone.now()).total_seconds()))


def _wrong_code(locked_for: int, otherwise: str) -> str:
    """What to tell someone whose code was refused. A code sent during a lock-out is not
    checked at all; saying "did not match" then sends people to doubt a code that was right."""
    if not locked_for:
        return otherwise
    return (
        f"Too many wrong codes in a row, so codes are not being checked for {locked_for} more "
        f"second{'s' if locked_for != 1 else ''}. Wait, then enter the code your app shows now."
    )


def _base32(raw: bytes) -> str:
    import base64

    return base64.b32encode(raw).decode().rstrip("=")
