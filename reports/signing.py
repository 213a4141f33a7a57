"""Packet signing uses the installation's Ed25519 key from `core.signing` (shared with the
audit-chain checkpoints); this module keeps the name the builder, pages and `verify_packet` use.
"""

from core.signing import (  # noqa: F401 — re-exported
    fingerprint,
    load_public_pem,
    private_key,
    public_key_pem,
    sign,
    verify,
)
