"""The stored packet zip, read only after checking it against its recorded SHA-256.

A mismatch (the file changed on disk since it was built and signed) is audited and refused:
nothing is downloaded or sent from a packet that is not the one approved. Used by the download
(`reports.packets`) and by the NCMEC adapter (`reports.ncmec`). Imports models and core only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.db import transaction

from core.audit import Actor, audit_record
from core.errors import Conflict

from .models import ReferralPacket


class StoredPacketError(Conflict):
    """The stored zip is missing or differs from what was built; the state is unchanged."""


def packet_path(packet: ReferralPacket) -> Path:
    return Path(settings.EVIDENCE_ROOT) / packet.file.name


def stored_packet_bytes(*, packet: ReferralPacket, actor: Actor, during: str) -> bytes:
    """The zip's bytes, verified; `during` names the action for the audit trail."""
    try:
        data = packet_path(packet).read_bytes() if packet.file.name else b""
    except OSError:
        data = b""
    if not data:
        raise StoredPacketError(f"The stored packet {packet.reference} is missing: rebuild it.")
    digest = hashlib.sha256(data).hexdigest()
    if digest != packet.sha256:
        with transaction.atomic():
            audit_record(
                actor=actor,
                verb="packet.integrity_failed",
                obj=packet,
                data={"expected": packet.sha256, "found": digest, "during": during},
            )
        raise StoredPacketError(
            "The stored packet does not match its recorded hash; the incident was logged "
            "and nothing was released. Rebuild it."
        )
    return data
