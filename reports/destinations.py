"""Referral destinations: UK police forces (from the versioned force list), NCA/CEOP, the IWF
and the optional NCMEC adapter. Admins create and edit them; every change is audited.

A destination stays in dry run until it has somewhere to send to: a contact route (portal,
email or phone) for police, NCA and IWF, credentials for NCMEC. Packets to a dry-run
destination are built and checked, and say plainly that nothing was sent.

Imports models, moderation's force list and core.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import IntegrityError, transaction

from core.audit import Actor, audit_record
from core.errors import DomainError
from moderation.forces import police_force_by_name

from .models import Destination

EDITABLE = (
    "name",
    "kind",
    "police_force",
    "jurisdiction",
    "contact_name",
    "contact_email",
    "contact_phone",
    "contact_url",
    "mode",
    "enabled",
)


class DestinationError(DomainError):
    """A refused destination change, naming the field (the API's `fields`); nothing saved."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


def ncmec_credentials_missing() -> list[str]:
    return [
        name
        for name in ("SAFEGUARD_NCMEC_USERNAME", "SAFEGUARD_NCMEC_PASSWORD")
        if not getattr(settings, name, "")
    ]


def _check(destination: Destination) -> None:
    """Every rule a destination must satisfy; raises DestinationError naming the field."""
    if not destination.name.strip():
        raise DestinationError("name", "A destination needs a name.")
    if destination.kind not in Destination.Kind.values:
        raise DestinationError("kind", f"Unknown kind {destination.kind!r}.")
    if destination.mode not in Destination.Mode.values:
        raise DestinationError("mode", f"Unknown mode {destination.mode!r}.")
    if destination.kind == Destination.Kind.POLICE:
        force = police_force_by_name(destination.police_force)
        if force is None:
            raise DestinationError(
                "police_force", f"{destination.police_force!r} is not a UK police force."
            )
        if destination.code and destination.code != force.code:
            raise DestinationError("police_force", "A destination cannot change its force.")
        destination.code = force.code
    elif destination.police_force:
        raise DestinationError("police_force", "Only police destinations name a force.")
    if destination.contact_email:
        try:
            EmailValidator()(destination.contact_email)
        except DjangoValidationError:
            raise DestinationError("contact_email", "Enter a valid email address.") from None
    if destination.contact_url:
        try:
            URLValidator(schemes=["https"])(destination.contact_url)
        except DjangoValidationError:
            raise DestinationError("contact_url", "Enter an https:// address.") from None
    if destination.mode != Destination.Mode.DRY_RUN:
        if destination.kind == Destination.Kind.NCMEC:
            missing = ncmec_credentials_missing()
            if missing:
                raise DestinationError(
                    "mode",
                    f"NCMEC stays in dry run until its credentials are set ({', '.join(missing)}).",
                )
        elif not destination.has_contact_route:
            raise DestinationError(
                "mode",
                "Record a contact route (portal address, email or phone) before leaving dry run.",
            )


def _save(destination: Destination, *, actor: Actor, verb: str, data: dict[str, Any]) -> None:
    _check(destination)
    try:
        with transaction.atomic():
            destination.save()
            audit_record(actor=actor, verb=verb, obj=destination, data=data)
    except IntegrityError:
        raise DestinationError(
            "name", "A destination with this name (or for this force) already exists."
        ) from None


def destination_create(*, actor: Actor, **fields: Any) -> Destination:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise DestinationError(sorted(unknown)[0], "Not an editable field.")
    destination = Destination(**fields)
    _save(
        destination,
        actor=actor,
        verb="destination.created",
        data={k: getattr(destination, k) for k in ("name", "kind", "police_force", "mode")},
    )
    return destination


def destination_update(*, actor: Actor, destination: Destination, **changes: Any) -> Destination:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise DestinationError(sorted(unknown)[0], "Not an editable field.")
    if "kind" in changes and changes["kind"] != destination.kind:
        raise DestinationError("kind", "A destination's kind cannot change; create another.")
    fresh = Destination.objects.get(pk=destination.pk)
    changed = {}
    for field, value in changes.items():
        if getattr(fresh, field) != value:
            changed[field] = {"from": getattr(fresh, field), "to": value}
            setattr(fresh, field, value)
    if changed:
        _save(fresh, actor=actor, verb="destination.updated", data={"changed": changed})
    return fresh


def police_destination(force_name: str) -> Destination:
    """The destination for a UK police force (created by the force-list migration; made here,
    dry run, if an admin deleted it)."""
    force = police_force_by_name(force_name)
    if force is None:
        raise DestinationError("police_force", f"{force_name!r} is not a UK police force.")
    destination = Destination.objects.filter(code=force.code).first()
    if destination is None:
        destination, _ = Destination.objects.get_or_create(
            code=force.code,
            defaults={
                "name": force.name,
                "kind": Destination.Kind.POLICE,
                "police_force": force.name,
                "mode": Destination.Mode.DRY_RUN,
            },
        )
    return destination
