"""A fake OpenID Connect provider on 127.0.0.1, for the tests: the edge, played locally.

It serves discovery, a key set, an authorisation endpoint that signs in whoever the test says
(`next_claims`) and a token endpoint that checks the client's secret, the redirect URI and the
PKCE verifier, and returns an RS256 ID token signed with a key generated per provider. Tests
that need a bad token set `forge` to a function that builds the ID token instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "safeguard-test"
CLIENT_SECRET = "fake-idp-client-secret"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeIdp:
    def __init__(self) -> None:
        self.key = new_key()
        self.kid = "test-key-1"
        self.next_claims: dict[str, Any] = {}
        self.forge: Callable[[dict[str, Any]], str] | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/realm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeIdp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what the tests use -------------------------------------------------------------

    def claims_for(self, nonce: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "sub-alice",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "preferred_username": "alice",
            "email": "alice@example.org",
            "groups": ["sg-moderators"],
        }
        claims.update(self.next_claims)
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def sign(
        self, claims: dict[str, Any], *, key: Any = None, kid: str | None = None, alg: str = "RS256"
    ) -> str:
        return jwt.encode(claims, key or self.key, algorithm=alg, headers={"kid": kid or self.kid})

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def reset(self) -> None:
        self.next_claims = {}
        self.forge = None
        self.codes.clear()
        self.token_requests = 0

    # --- the HTTP side ------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                base = idp.issuer
                if url.path == "/realm/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": base,
                            "authorization_endpoint": f"{base}/authorize",
                            "token_endpoint": f"{base}/token",
                            "jwks_uri": f"{base}/jwks",
                            "end_session_endpoint": f"{base}/logout",
                            "id_token_signing_alg_values_supported": ["RS256"],
                        },
                    )
                elif url.path == "/realm/jwks":
                    self._json(200, idp.jwks())
                elif url.path == "/realm/authorize":
                    # Signs in whoever the test named; remembers what the token needs.
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = query
                    target = f"{query['redirect_uri']}?" + urlencode(
                        {"code": code, "state": query["state"]}
                    )
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                elif url.path == "/realm/logout":
                    self.send_response(302)
                    self.send_header("Location", query.get("post_logout_redirect_uri", "/"))
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/realm/token":
                    self._json(404, {"error": "not_found"})
                    return
                idp.token_requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._json(401, {"error": "invalid_client"})
                    return
                request = idp.codes.pop(form.get("code", ""), None)
                if request is None or form.get("redirect_uri") != request["redirect_uri"]:
                    self._json(400, {"error": "invalid_grant"})
                    return
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if challenge != request.get("code_challenge"):
                    self._json(400, {"error": "invalid_grant", "error_description": "pkce"})
                    return
                claims = idp.claims_for(request["nonce"])
                id_token = idp.forge(claims) if idp.forge else idp.sign(claims)
                self._json(
                    200,
                    {
                        "access_token": secrets.token_urlsafe(16),
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": id_token,
                    },
                )

        return Handler
