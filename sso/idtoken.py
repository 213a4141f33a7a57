"""Verification of the provider's ID token (OpenID Connect Core 1.0, section 3.1.3.7).

PyJWT does the cryptography and the registered-claim checks; this module decides which
algorithm and key it may use, because that is where ID-token validation usually goes wrong:
accepting `alg: none`, or an HMAC "signature" made with the provider's public key.
"""

from __future__ import annotations

import hmac
from typing import Any

import jwt
from django.conf import settings

from .errors import SsoRefused
from .provider import signing_keys

# Clock difference tolerated between the provider and this server, in seconds.
LEEWAY_SECONDS = 60
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nonce")
REFUSED = (
    "The identity provider's answer could not be trusted, so you were not signed in. "
    "Start again from the login page; if it happens again, tell your administrator."
)
EXPIRED = "The sign-in took too long and its token expired. Start again from the login page."


def _refuse(detail: str, message: str = REFUSED) -> SsoRefused:
    return SsoRefused(message, detail=f"ID token refused: {detail}")


def _matching_key(header: dict[str, Any], keys: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The provider key the header names: same `kid` (when given), same `alg` (when the key
    says), a signing key."""
    kid = header.get("kid")
    candidates = [
        key
        for key in keys
        if (kid is None or key.get("kid") == kid)
        and key.get("alg", header["alg"]) == header["alg"]
        and key.get("use", "sig") == "sig"
    ]
    # Without a kid only an unambiguous key set will do: guessing among keys is how a token
    # signed with a retired key would slip through.
    if len(candidates) == 1 or (kid is not None and candidates):
        return candidates[0]
    return None


def id_token_verify(*, token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims, once it is proven to come from the configured provider, for
    this client, now, and for this sign-in attempt. Raises SsoRefused otherwise.

    1. Read the header without trusting it; refuse any algorithm not configured (never
       `none`, never HS*: settings refuse to configure them).
    2. Find the provider's key by `kid`; fetch the key set again once if it is missing.
    3. Check signature, issuer, audience, expiry, issue time and required claims (PyJWT).
    4. With several audiences, `azp` must be this client (OIDC Core 3.1.3.7, item 4-5).
    5. The nonce must be the one this browser's session sent (replay protection).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _refuse(f"malformed ({exc})") from None
    algorithm = header.get("alg")
    allowed = list(settings.SAFEGUARD_OIDC_SIGNING_ALGORITHMS)
    if algorithm not in allowed:
        raise _refuse(f"algorithm {algorithm!r} is not one of {allowed}")
    key = _matching_key(header, signing_keys())
    if key is None:
        key = _matching_key(header, signing_keys(refresh=True))
    if key is None:
        raise _refuse(f"no provider key matches kid {header.get('kid')!r}")
    try:
        public_key = jwt.PyJWK(key, algorithm=algorithm).key
        claims = jwt.decode(
            token,
            key=public_key,
            algorithms=[algorithm],
            audience=settings.SAFEGUARD_OIDC_CLIENT_ID,
            issuer=settings.SAFEGUARD_OIDC_ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise _refuse("expired", EXPIRED) from None
    except jwt.PyJWTError as exc:
        raise _refuse(f"{type(exc).__name__}: {exc}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != settings.SAFEGUARD_OIDC_CLIENT_ID:
        raise _refuse("several audiences and azp is not this client")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise _refuse("nonce does not match this sign-in")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise _refuse("sub is empty")
    return claims
