"""The identity provider as configured: its endpoints (discovery or explicit) and signing keys,
fetched over the one outbound HTTP chokepoint of this app (`_http_get_json`, `token_request`).

Network I/O only, never inside a database transaction. Metadata and keys are cached in the
shared cache for a few minutes; an ID token signed with a key id the cache does not hold
refreshes the key set once (the provider rotated its keys).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache

from .errors import SsoRefused

# Long enough to spare the provider a request per sign-in, short enough that a changed
# endpoint or a withdrawn key is picked up within minutes.
CACHE_SECONDS = 300
# A discovery document or key set is a few kilobytes; anything far larger is not one.
MAX_RESPONSE_BYTES = 512 * 1024
UNREACHABLE = (
    "Safeguard could not reach the identity provider. Try again in a minute; if it keeps "
    "happening, tell your administrator."
)


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str


def oidc_enabled() -> bool:
    return bool(settings.SAFEGUARD_OIDC_ENABLED)


def _cache_key(kind: str) -> str:
    return f"sso:{kind}:{settings.SAFEGUARD_OIDC_ISSUER}"


def _read_json(response: requests.Response, url: str) -> Any:
    if response.status_code != 200:
        raise SsoRefused(
            UNREACHABLE, detail=f"{url} answered HTTP {response.status_code}", status=502
        )
    body = response.content
    if len(body) > MAX_RESPONSE_BYTES:
        raise SsoRefused(UNREACHABLE, detail=f"{url} answered {len(body)} bytes", status=502)
    try:
        return response.json()
    except ValueError:
        raise SsoRefused(UNREACHABLE, detail=f"{url} did not answer JSON", status=502) from None


def _http_get_json(url: str) -> Any:
    try:
        response = requests.get(
            url,
            timeout=settings.SAFEGUARD_OIDC_TIMEOUT_SECONDS,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        )
    except requests.RequestException as exc:
        raise SsoRefused(UNREACHABLE, detail=f"GET {url}: {exc}", status=502) from None
    return _read_json(response, url)


def token_request(*, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
    """Exchange an authorisation code at the token endpoint (authorisation code flow + PKCE)."""
    url = provider_metadata().token_endpoint
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        "client_id": settings.SAFEGUARD_OIDC_CLIENT_ID,
    }
    auth = None
    if settings.SAFEGUARD_OIDC_TOKEN_AUTH_METHOD == "client_secret_post":  # noqa: S105 — a method name
        data["client_secret"] = settings.SAFEGUARD_OIDC_CLIENT_SECRET
    else:
        auth = (settings.SAFEGUARD_OIDC_CLIENT_ID, settings.SAFEGUARD_OIDC_CLIENT_SECRET)
    try:
        response = requests.post(
            url,
            data=data,
            auth=auth,
            timeout=settings.SAFEGUARD_OIDC_TIMEOUT_SECONDS,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        )
    except requests.RequestException as exc:
        raise SsoRefused(UNREACHABLE, detail=f"POST {url}: {exc}", status=502) from None
    if response.status_code in (400, 401):
        # invalid_grant: a code used twice, expired, or issued to another client.
        raise SsoRefused(
            "The identity provider did not accept this sign-in (the link may have been used "
            "already or have expired). Start again from the login page.",
            detail=f"token endpoint answered HTTP {response.status_code}",
        )
    body = _read_json(response, url)
    if not isinstance(body, dict):
        raise SsoRefused(UNREACHABLE, detail="token response is not an object", status=502)
    return body


def provider_metadata() -> Provider:
    """The provider's endpoints: discovery (checked against the configured issuer), with any
    explicitly configured endpoint taking precedence."""
    cached = cache.get(_cache_key("metadata"))
    if cached is not None:
        return Provider(**cached)
    issuer = settings.SAFEGUARD_OIDC_ISSUER
    discovered: dict[str, Any] = {}
    if settings.SAFEGUARD_OIDC_DISCOVERY:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        discovered = _http_get_json(url)
        # OpenID Connect Discovery 1.0, section 4.3: the document's issuer must be exactly the
        # one we asked; otherwise a compromised or confused server could impersonate another.
        if not isinstance(discovered, dict) or discovered.get("issuer") != issuer:
            raise SsoRefused(
                UNREACHABLE, detail=f"discovery at {url} names another issuer", status=502
            )
    provider = Provider(
        issuer=issuer,
        authorization_endpoint=settings.SAFEGUARD_OIDC_AUTHORIZATION_ENDPOINT
        or str(discovered.get("authorization_endpoint", "")),
        token_endpoint=settings.SAFEGUARD_OIDC_TOKEN_ENDPOINT
        or str(discovered.get("token_endpoint", "")),
        jwks_uri=settings.SAFEGUARD_OIDC_JWKS_URI or str(discovered.get("jwks_uri", "")),
        end_session_endpoint=settings.SAFEGUARD_OIDC_END_SESSION_ENDPOINT
        or str(discovered.get("end_session_endpoint", "")),
    )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not getattr(provider, name).startswith(("https://", "http://")):
            raise SsoRefused(UNREACHABLE, detail=f"the provider names no {name}", status=502)
    cache.set(_cache_key("metadata"), asdict(provider), CACHE_SECONDS)
    return provider


def signing_keys(*, refresh: bool = False) -> list[dict[str, Any]]:
    """The provider's public keys (JWKS), as JWK dictionaries."""
    if not refresh:
        cached = cache.get(_cache_key("jwks"))
        if cached is not None:
            return cached
    document = _http_get_json(provider_metadata().jwks_uri)
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise SsoRefused(UNREACHABLE, detail="the key set holds no keys", status=502)
    keys = [key for key in keys if isinstance(key, dict)]
    cache.set(_cache_key("jwks"), keys, CACHE_SECONDS)
    return keys


def forget_provider() -> None:
    """Drop the cached metadata and keys (after a configuration change; in tests)."""
    cache.delete_many([_cache_key("metadata"), _cache_key("jwks")])
