"""ID token verification (sso.idtoken) against the fake provider's key set."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sso.errors import SsoRefused
from sso.idtoken import id_token_verify
from sso.provider import signing_keys
from tests.sso.fake_idp import FakeIdp, new_key


def _claims(idp: FakeIdp, **overrides: Any) -> dict[str, Any]:
    return idp.claims_for("n-1", **overrides)


class IdTokenTests:
    def test_a_good_token_gives_its_claims(self, idp: FakeIdp) -> None:
        claims = id_token_verify(token=idp.sign(_claims(idp)), nonce="n-1")
        assert claims["sub"] == "sub-alice"

    def test_a_rotated_key_is_fetched_once(self, idp: FakeIdp) -> None:
        signing_keys()  # the old key set is cached
        idp.key, idp.kid = new_key(), "test-key-2"
        claims = id_token_verify(token=idp.sign(_claims(idp)), nonce="n-1")
        assert claims["sub"] == "sub-alice"

    def test_a_small_clock_difference_is_tolerated(self, idp: FakeIdp) -> None:
        now = int(time.time())
        token = idp.sign(_claims(idp, iat=now + 30, exp=now + 330))
        assert id_token_verify(token=token, nonce="n-1")

    def test_a_token_without_a_kid_needs_an_unambiguous_key_set(self, idp: FakeIdp) -> None:
        import jwt

        token = jwt.encode(_claims(idp), idp.key, algorithm="RS256")  # no kid header
        assert id_token_verify(token=token, nonce="n-1")  # one key: unambiguous

    @pytest.mark.parametrize(
        "claim", ["iss", "sub", "aud", "exp", "iat", "nonce"], ids=lambda c: f"no-{c}"
    )
    def test_each_required_claim_must_be_present(self, idp: FakeIdp, claim: str) -> None:
        claims = {k: v for k, v in _claims(idp).items() if k != claim}
        with pytest.raises(SsoRefused):
            id_token_verify(token=idp.sign(claims), nonce="n-1")

    def test_an_empty_subject_is_refused(self, idp: FakeIdp) -> None:
        with pytest.raises(SsoRefused):
            id_token_verify(token=idp.sign(_claims(idp, sub="")), nonce="n-1")

    def test_a_token_not_yet_valid_is_refused(self, idp: FakeIdp) -> None:
        later = int(time.time()) + 3600
        with pytest.raises(SsoRefused):
            id_token_verify(
                token=idp.sign(_claims(idp, iat=later, nbf=later, exp=later + 300)), nonce="n-1"
            )

    def test_a_key_of_the_wrong_type_for_the_algorithm_is_refused(
        self, idp: FakeIdp, settings: Any
    ) -> None:
        settings.SAFEGUARD_OIDC_SIGNING_ALGORITHMS = ["RS256", "ES256"]
        from cryptography.hazmat.primitives.asymmetric import ec

        token = idp.sign(_claims(idp), key=ec.generate_private_key(ec.SECP256R1()), alg="ES256")
        with pytest.raises(SsoRefused):
            id_token_verify(token=token, nonce="n-1")
