from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import SystemActor
from core.models import ApiToken
from core.services import api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token and print its key once. Without --user the token belongs to a "
        "platform service account (intake only); with --user it acts as that console user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--user", dest="username")

    def handle(self, *args: Any, name: str, username: str | None, **options: Any) -> None:
        if ApiToken.objects.filter(name=name).exists():
            raise CommandError(f"A token named {name!r} already exists.")
        user = None
        if username:
            try:
                user = get_user_model().objects.get(username=username)
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {username!r}.") from None
        _, key = api_token_create(
            name=name, user=user, actor=SystemActor("manage.py create_api_token")
        )
        self.stdout.write(key)
