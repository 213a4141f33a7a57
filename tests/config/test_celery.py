"""The Celery application's process setup (config/celery.py)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from config.celery import _database_hygiene, app


def _task(*, eager: bool) -> SimpleNamespace:
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def test_celery_no_longer_closes_the_connection_after_every_task() -> None:
    assert DjangoWorkerFixup(app).db_reuse_max >= 1000


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class DatabaseHygieneTests:
    def test_a_healthy_connection_is_kept_across_tasks(self) -> None:
        connection.ensure_connection()
        raw = connection.connection
        connection.close_at = time.monotonic() + 60  # as DATABASE_CONN_MAX_AGE=60 would
        _database_hygiene(sender=_task(eager=False))
        assert connection.connection is raw

    def test_an_old_connection_is_closed_between_tasks(self) -> None:
        connection.ensure_connection()
        connection.close_at = time.monotonic() - 1
        _database_hygiene(sender=_task(eager=False))
        assert connection.connection is None


@pytest.mark.django_db
def test_an_eager_task_leaves_its_callers_transaction_alone() -> None:
    connection.ensure_connection()
    raw = connection.connection
    connection.close_at = time.monotonic() - 1
    _database_hygiene(sender=_task(eager=True))
    assert connection.connection is raw and connection.in_atomic_block
