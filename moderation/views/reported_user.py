"""The "Reported user" panel of the case page: the subject details each item arrived with,
laid out for the template. Personal data of the reported user (IP address, email, phone,
linked accounts): the case page builds it for safety leads and admins only. Presentation
only: reads the items, writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from moderation.models import Item


@dataclass(frozen=True)
class ReportedUser:
    """One item's details of the reported user: (label, value) pairs, only those present."""

    number: int
    item: Item
    details: list[tuple[str, str]]


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _details(item: Item) -> list[tuple[str, str]]:
    rows: list[tuple[str, str | None]] = [
        ("Account id", item.subject_account_id),
        ("Username", item.subject_username),
        ("Display name", item.subject_display_name),
        ("Email", item.subject_email),
        ("Phone", item.subject_phone),
        ("IP address", item.subject_ip),
        ("Port", None if item.subject_port is None else str(item.subject_port)),
        ("IP seen at", _when(item.subject_ip_seen_at) if item.subject_ip_seen_at else None),
        ("Country", item.subject_country),
        (
            "Account created",
            _when(item.subject_account_created_at) if item.subject_account_created_at else None,
        ),
        ("Linked accounts", ", ".join(item.subject_linked_accounts or [])),
    ]
    return [(label, value) for label, value in rows if value]


def reported_user(items: list[Item]) -> list[ReportedUser]:
    """The subject details of a case's items, numbered as the page numbers the items; items
    that arrived with none are left out."""
    panel = []
    for number, item in enumerate(items, start=1):
        details = _details(item)
        if details:
            panel.append(ReportedUser(number=number, item=item, details=details))
    return panel
