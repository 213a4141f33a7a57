"""Sign in through the identity provider (authorisation code flow with PKCE), and sign out of
both. Public by design: these are how a person without a session gets one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_otp import login as otp_login

from .errors import SsoRefused
from .idtoken import id_token_verify
from .provider import UNREACHABLE, oidc_enabled, provider_metadata, token_request
from .services import NO_ROLE, sso_sign_in

logger = logging.getLogger(__name__)
BACKEND = "sso.backends.OidcBackend"
# Session keys: the attempt in flight (state, nonce, PKCE verifier, where to go next), and
# the ID token kept as the provider's logout hint.
PENDING_KEY = "sso_pending"
ID_TOKEN_KEY = "sso_id_token"  # noqa: S105 — a session key name, not a secret


def _redirect_uri() -> str:
    # From SITE_URL, not the request's Host header: it must match what the provider has
    # registered, and a forged Host must not choose where codes are sent.
    return settings.SITE_URL + reverse("sso:callback")


def _safe_next(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(settings.LOGIN_REDIRECT_URL)


def _refused(request: HttpRequest, refusal: SsoRefused) -> HttpResponse:
    logger.warning("single sign-on refused: %s", refusal.detail)
    return render(
        request,
        "sso/refused.html",
        {"message": refusal.message, "provider_name": settings.SAFEGUARD_OIDC_PROVIDER_NAME},
        status=refusal.status,
    )


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@login_not_required
@never_cache
@require_GET
def start(request: HttpRequest) -> HttpResponse:
    """Send the browser to the provider with a fresh state, nonce and PKCE challenge."""
    if not oidc_enabled():
        raise Http404("Single sign-on is not configured.")
    try:
        provider = provider_metadata()
    except SsoRefused as refusal:
        return _refused(request, refusal)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    request.session[PENDING_KEY] = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "next": _safe_next(request, request.GET.get("next", "")),
    }
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.SAFEGUARD_OIDC_CLIENT_ID,
            "redirect_uri": _redirect_uri(),
            "scope": settings.SAFEGUARD_OIDC_SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": _pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    return HttpResponseRedirect(f"{provider.authorization_endpoint}{separator}{query}")


def _finish(request: HttpRequest, pending: dict[str, Any]) -> HttpResponse:
    """Steps 2-4 of the flow: the provider's answer, the token, the person."""
    error = request.GET.get("error")
    if error:
        raise SsoRefused(
            "The identity provider did not sign you in. Start again from the login page.",
            detail=f"provider returned error {error[:100]!r}",
        )
    code = request.GET.get("code", "")
    if not code:
        raise SsoRefused(
            "The identity provider's answer was incomplete. Start again from the login page.",
            detail="no code in callback",
            status=400,
        )
    tokens = token_request(
        code=code, redirect_uri=_redirect_uri(), code_verifier=pending["verifier"]
    )
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise SsoRefused(
            "The identity provider's answer held no identity. Tell your administrator.",
            detail="token response without id_token (is the openid scope configured?)",
        )
    claims = id_token_verify(token=id_token, nonce=pending["nonce"])
    outcome = sso_sign_in(claims=claims)
    if outcome.role is None:
        raise SsoRefused(NO_ROLE, detail="no mapped group; roles removed")
    login(request, outcome.user, backend=BACKEND)
    request.session[ID_TOKEN_KEY] = id_token
    if outcome.mfa_device is not None:
        # The provider asserted MFA: the session counts as verified, as after a TOTP code.
        otp_login(request, outcome.mfa_device)
    return redirect(pending["next"])


@login_not_required
@never_cache
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """The provider sends the browser back here with a code; check it belongs to the attempt
    this session started, then sign the person in, or refuse with a page saying why."""
    if not oidc_enabled():
        raise Http404("Single sign-on is not configured.")
    # Used once: a replayed callback URL finds no attempt in flight.
    pending = request.session.pop(PENDING_KEY, None)
    state = request.GET.get("state", "")
    if not isinstance(pending, dict) or not hmac.compare_digest(
        str(pending.get("state", "")), state
    ):
        return _refused(
            request,
            SsoRefused(
                "This sign-in link does not belong to a sign-in started in this browser (or "
                "was used already). Start again from the login page.",
                detail="state missing or different",
                status=400,
            ),
        )
    try:
        return _finish(request, pending)
    except SsoRefused as refusal:
        return _refused(request, refusal)


@login_not_required
@never_cache
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End the local session, then the provider's where it offers an end-session endpoint."""
    id_token = request.session.get(ID_TOKEN_KEY, "")
    logout(request)
    after = settings.SITE_URL + reverse(settings.LOGOUT_REDIRECT_URL)
    if not (oidc_enabled() and id_token):
        return redirect(settings.LOGOUT_REDIRECT_URL)
    try:
        endpoint = provider_metadata().end_session_endpoint
    except SsoRefused:
        logger.warning("single sign-on logout: %s", UNREACHABLE)
        endpoint = ""
    if not endpoint:
        return redirect(settings.LOGOUT_REDIRECT_URL)
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": after,
            "client_id": settings.SAFEGUARD_OIDC_CLIENT_ID,
        }
    )
    separator = "&" if "?" in endpoint else "?"
    return HttpResponseRedirect(f"{endpoint}{separator}{query}")
