"""Ed25519 signing with this installation's key: referral packet manifests (reports) and
audit-chain checkpoints (core.checkpoints). The private key never leaves this installation.

Imports nothing from the project but settings and core.keyfiles.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from core import keyfiles


def _key_path() -> Path:
    return Path(settings.SAFEGUARD_SIGNING_KEY_FILE)


@lru_cache(maxsize=4)
def _load_private(path: str) -> Ed25519PrivateKey:
    key_file = Path(path)

    def generate() -> bytes:
        # First use (e.g. the demo): a new key, readable by this user only.
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    pem = keyfiles.read_or_create(key_file, generate)
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{key_file} is not an Ed25519 private key")
    return loaded


def private_key() -> Ed25519PrivateKey:
    return _load_private(str(_key_path()))


def public_key_pem() -> bytes:
    return (
        private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def fingerprint(public: Ed25519PublicKey | None = None) -> str:
    public = public or private_key().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(data: bytes) -> bytes:
    return private_key().sign(data)


def load_public_pem(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def verify(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True
