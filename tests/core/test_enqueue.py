from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import pytest
from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError

from core.enqueue import enqueue_on_commit

RAN: list[tuple[Any, ...]] = []


@shared_task(name="tests.enqueue_probe")
def enqueue_probe_task(*args: Any) -> None:
    RAN.append(args)


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


@pytest.mark.django_db
class EnqueueOnCommitTests:
    def test_it_sends_only_when_the_transaction_commits(
        self, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks() as callbacks:
            enqueue_on_commit("tests.enqueue_probe", 1, "a")
        assert RAN == [] and len(callbacks) == 1
        callbacks[0]()
        assert RAN == [(1, "a")]  # eager in the embedded default: ran in-process

    def test_a_rolled_back_transaction_enqueues_nothing(
        self, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            try:
                with transaction.atomic():
                    enqueue_on_commit(enqueue_probe_task, 2)
                    raise RuntimeError("rolled back")
            except RuntimeError:
                pass
        assert RAN == []

    def test_a_broker_that_is_down_is_logged_and_never_raised(
        self, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        down = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        with (
            mock.patch.object(enqueue_probe_task, "delay", side_effect=down),
            caplog.at_level(logging.WARNING, logger="core.enqueue"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            enqueue_on_commit("tests.enqueue_probe", 3)
        assert RAN == []
        assert "Could not enqueue tests.enqueue_probe" in caplog.text
        assert "sweeper" in caplog.text

    def test_an_unknown_task_name_fails_in_the_caller_not_after_commit(self) -> None:
        with pytest.raises(KeyError):
            enqueue_on_commit("tests.no_such_task")
