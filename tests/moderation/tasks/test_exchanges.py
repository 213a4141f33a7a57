"""Exchange tasks: beat hands due exchanges to the fetch task, which fetches then sends
feedback; the fetch task is late-acknowledged and time-limited inside its budget."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.conf import settings

from moderation.models import Exchange, ExchangeFetch, KnownHash
from moderation.tasks.exchanges import exchanges_due_task, fetch_exchange_task
from tests.moderation.exchanges.conftest import KEY, connect
from tests.moderation.exchanges.fake_exchange import FakeExchange, random_hex


@pytest.mark.django_db
class ExchangeTaskTests:
    def test_beat_enqueues_the_fetch_which_fills_the_list(
        self, django_capture_on_commit_callbacks: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_EXCHANGE_KEY = [KEY]
        settings.SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS = True
        with FakeExchange() as fake:
            rng = random.Random(3)
            for i in range(3):
                value = random_hex(rng, 64)
                fake["stopncii"].add(100 + i, value, hashValue=value)
            exchange = connect(fake, "stopncii")
            with django_capture_on_commit_callbacks(execute=True):
                assert exchanges_due_task() == 1
        assert ExchangeFetch.objects.get(exchange=exchange).status == "done"
        assert KnownHash.objects.count() == 3
        assert Exchange.objects.get().state == "idle"

    def test_the_fetch_task_is_acknowledged_late_and_limited_inside_its_budget(self) -> None:
        assert fetch_exchange_task.acks_late
        budget = settings.SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS
        assert budget < fetch_exchange_task.soft_time_limit < fetch_exchange_task.time_limit
        assert fetch_exchange_task.time_limit < settings.SAFEGUARD_EXCHANGE_LEASE_SECONDS
