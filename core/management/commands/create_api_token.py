from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.audit import SystemActor
from core.errors import DomainError
from core.tokens import api_token_create


def _expiry(value: str) -> datetime:
    """`YYYY-MM-DD`: the key is refused from 00:00 on that day (the console's time zone)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--expires wants a date as YYYY-MM-DD, not {value!r}.") from None
    return timezone.make_aware(datetime.combine(day, time.min))


class Command(BaseCommand):
    help = (
        "Create an API token and print its key once. Without --user the token belongs to a "
        "platform service account (intake only); with --user it acts as that console user. "
        "Admins can also issue and revoke tokens on the console's API tokens page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--user", dest="username")
        parser.add_argument(
            "--expires",
            dest="expires",
            metavar="YYYY-MM-DD",
            help="refuse the key from 00:00 on this day",
        )

    def handle(
        self, *args: Any, name: str, username: str | None, expires: str | None, **options: Any
    ) -> None:
        user = None
        if username:
            try:
                user = get_user_model().objects.get(username=username)
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {username!r}.") from None
        try:
            _, key = api_token_create(
                name=name,
                user=user,
                expires_at=_expiry(expires) if expires else None,
                actor=SystemActor("manage.py create_api_token"),
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(key)
