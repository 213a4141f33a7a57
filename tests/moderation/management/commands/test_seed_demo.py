"""`manage.py seed_demo`: demo users, synthetic items in every category, synthetic lists."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from moderation.models import Case, HashList, Item, Match, Media
from principles.models import HarmCategory


@pytest.mark.django_db
class SeedDemoTests:
    def test_it_creates_users_items_in_every_category_and_a_synthetic_list(
        self, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_DEMO_PASSWORD = "a-demo-password-123"
        with django_capture_on_commit_callbacks(execute=True):
            call_command("seed_demo", stdout=StringIO())
        users = get_user_model().objects
        for name in ("moderator", "lead", "admin"):
            assert users.get(username=name).check_password("a-demo-password-123")
        assert Item.objects.count() >= 50
        hinted = set(Item.objects.values_list("category_hint__code", flat=True))
        assert hinted == set(HarmCategory.objects.values_list("code", flat=True))
        assert HashList.objects.filter(name__startswith="Synthetic").count() == 3
        assert Media.objects.filter(hash_status="done").count() == Media.objects.count() > 0
        assert Match.objects.exists()  # some generated images are in the synthetic lists
        # The generated demo videos: one matches the demo video list, one shows a listed still.
        videos = Media.objects.filter(kind="video")
        assert videos.count() == 3 and all(v.frames.exists() for v in videos)
        assert Match.objects.filter(media__in=videos, algorithm="vpdq").exists()
        assert Match.objects.filter(media__in=videos, algorithm="pdq").exists()
        assert Case.objects.filter(category__code="known_csam").exists()

    def test_a_second_run_adds_nothing(self, settings: Any) -> None:
        settings.SAFEGUARD_DEMO_PASSWORD = "a-demo-password-123"
        call_command("seed_demo", "--items", "10", stdout=StringIO())
        counts = (Item.objects.count(), Case.objects.count(), Media.objects.count())
        out = StringIO()
        call_command("seed_demo", "--items", "10", stdout=out)
        assert (Item.objects.count(), Case.objects.count(), Media.objects.count()) == counts
        assert "0 new items" in out.getvalue()

    def test_without_a_configured_password_one_is_generated_and_printed_once(
        self, settings: Any
    ) -> None:
        settings.SAFEGUARD_DEMO_PASSWORD = ""
        out = StringIO()
        call_command("seed_demo", "--items", "2", stdout=out)
        password = out.getvalue().split("password: ")[1].split()[0]
        assert get_user_model().objects.get(username="lead").check_password(password)
        again = StringIO()
        call_command("seed_demo", "--items", "2", stdout=again)
        assert "password: " not in again.getvalue()

    def test_a_few_items_carry_synthetic_reported_user_details(self, settings: Any) -> None:
        settings.SAFEGUARD_DEMO_PASSWORD = "a-demo-password-123"
        call_command("seed_demo", "--items", "3", stdout=StringIO())
        detailed = Item.objects.exclude(subject_email="").order_by("external_id")
        assert [i.external_id for i in detailed] == ["demo-0001", "demo-0002"]
        v4, v6 = detailed
        assert v4.subject_ip.startswith("192.0.2.") and v6.subject_ip.startswith("2001:db8::")
        for item in detailed:
            assert item.subject_email.endswith("@example.org")
            assert item.subject_phone.startswith("+44 7700 900")
            assert item.subject_port and item.subject_ip_seen_at and item.subject_linked_accounts
