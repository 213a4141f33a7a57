from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from core.audit import SystemActor
from core.enrolment import EnrolmentRefused, enrolment_link_issue

ACTOR = SystemActor("manage.py enrolment_link")


class Command(BaseCommand):
    help = (
        "Issue a one-time second-factor enrolment link for a person (audited) and print it: "
        "how the first admin of an installation sets up their authenticator."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--hours", type=int, default=None, help="how long it works")

    def handle(self, *args: Any, username: str, hours: int | None = None, **options: Any) -> None:
        person = get_user_model().objects.filter(username=username).first()
        if person is None:
            raise CommandError(f"No person called {username!r}.")
        if hours is not None and hours < 1:
            raise CommandError("--hours must be at least 1.")
        try:
            link, token = enrolment_link_issue(actor=ACTOR, person=person, hours=hours)
        except EnrolmentRefused as exc:
            raise CommandError(exc.message) from None
        path = reverse("core:enrolment_link", args=[token])
        self.stdout.write(f"{settings.SITE_URL.rstrip('/')}{path}")
        self.stderr.write(
            f"Works once, for {username} logged in, until {link.expires_at:%Y-%m-%d %H:%M} UTC."
        )
