"""Shared fixtures: personas (moderator, lead, admin, outsider), API clients, Celery mode.

Service-backed tests carry markers (postgres, redis, worker, e2e). Without the service they
skip — except under CI=true, where a skip of a service test is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from rest_framework.test import APIClient

from core.audit import SystemActor
from core.roles import ADMIN, MODERATOR, SAFETY_LEAD
from core.services import api_token_create

IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct-horse-battery-staple-9"


def service_unavailable(reason: str) -> None:
    """Skip locally; fail in CI (service tests may not be skipped there)."""
    if IN_CI:
        pytest.fail(f"Service test cannot run under CI=true: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test must use ``serialized_rollback``, so that test order can't
    break setup. A plain transactional test's closing flush fires post_migrate. That re-creates
    content types, permissions and the roles under new ids. A serialized test that follows
    re-inserts the migrations' rows by their old ids and stops at setup with UniqueViolation on
    a group's name. A serialized test's flush skips post_migrate, so the next test finds the
    database empty, as Django's deserializing expects.
    """
    plain = [
        item.nodeid
        for item in items
        if (marker := item.get_closest_marker("django_db")) is not None
        and marker.kwargs.get("transaction")
        and not marker.kwargs.get("serialized_rollback")
    ]
    if plain:
        raise pytest.UsageError(
            "transactional tests need serialized_rollback=True (see tests/conftest.py): "
            + ", ".join(plain[:5])
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not _database_is_postgres():
        service_unavailable("needs PostgreSQL (set DATABASE_URL=postgres://…)")


def _database_is_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture(autouse=True)
def _isolated_storage(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("evidence")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }
    settings.EVIDENCE_ROOT = root
    settings.SAFEGUARD_INDEX_DIR = tmp_path_factory.mktemp("index")
    settings.SAFEGUARD_AUDIT_CHECKPOINT_DIR = tmp_path_factory.mktemp("audit-checkpoints")


@pytest.fixture(autouse=True)
def _eager_celery(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit tests run tasks in-process; tests marked `worker` use a real worker and broker."""
    from config.celery import app

    eager = request.node.get_closest_marker("worker") is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _generous_api_rate(settings: Any) -> None:
    """API rate limits have their own tests; elsewhere they would only make tests flaky."""
    settings.SAFEGUARD_API_RATE = "100000/min"
    settings.SAFEGUARD_API_ANON_RATE = "100000/min"
    # Personas are created in almost every test: a deliberately slow password hash would
    # dominate the suite's run time, and tests don't need its strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


_after_flush = False


@pytest.fixture(autouse=True)
def _reference_data(request: pytest.FixtureRequest) -> None:
    """Migrations load the principles, harm categories and roles; a transactional test's flush
    removes them. Re-create them (idempotently) for every test that touches the database."""
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or {"db", "transactional_db", "live_server"} & set(
        request.fixturenames
    )
    if not uses_db:
        return
    transactional = bool(marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    global _after_flush
    if _after_flush:
        # The previous test was transactional: its flush re-created content types under new
        # ids, which Django's cache and guardian's own (per app label and codename) would
        # contradict: guardian then raised MixedContentTypeError, depending on test order.
        from django.contrib.contenttypes.models import ContentType
        from guardian.shortcuts import clear_ct_cache

        ContentType.objects.clear_cache()
        clear_ct_cache()
    _after_flush = transactional  # its flush comes at its end
    from django.contrib.auth.models import Group as GroupModel
    from django.contrib.auth.models import Permission

    from core.roles import sync_roles
    from principles.models import HarmCategory, Principle
    from principles.registry import load_registry

    if not HarmCategory.objects.exists():
        load_registry(Principle, HarmCategory)
    admin_group = GroupModel.objects.filter(name=ADMIN).first()
    if admin_group is None or not admin_group.permissions.exists():
        # A flush without post_migrate emptied content types and permissions: rebuild them
        # (and forget cached content-type ids, which the flush made stale) before the roles.
        from django.apps import apps
        from django.contrib.auth.management import create_permissions
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()
        for app_config in apps.get_app_configs():
            create_permissions(app_config, verbosity=0)
        sync_roles(GroupModel, Permission)
    from reports.models import Destination

    if not Destination.objects.exists():
        import importlib

        from django.apps import apps as django_apps

        defaults = importlib.import_module("reports.migrations.0002_default_destinations")
        for row in defaults.DEFAULTS:
            Destination.objects.create(**row, mode="dry_run")
        forces = importlib.import_module("reports.migrations.0005_police_force_destinations")
        forces.forward(django_apps, None)


def _user(django_user_model: Any, username: str, role: str | None) -> Any:
    user = django_user_model.objects.create_user(
        username=username,
        password=PASSWORD,
        email=f"{username}@example.org",
        is_staff=role == ADMIN,
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def moderator(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "mod1", MODERATOR)


@pytest.fixture
def moderator2(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "mod2", MODERATOR)


@pytest.fixture
def lead(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "lead1", SAFETY_LEAD)


@pytest.fixture
def lead2(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "lead2", SAFETY_LEAD)


@pytest.fixture
def admin_user(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "admin1", ADMIN)


@pytest.fixture
def outsider(db: None, django_user_model: Any) -> Any:
    """Authenticated, but in no role."""
    return _user(django_user_model, "outsider", None)


@pytest.fixture
def platform_key(db: None) -> str:
    _, key = api_token_create(name="test-platform", actor=SystemActor("test"))
    return key


@pytest.fixture
def platform_client(platform_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {platform_key}")
    return client


@pytest.fixture
def other_platform_client(db: None) -> APIClient:
    _, key = api_token_create(name="other-platform", actor=SystemActor("test"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def verified_device(user: Any) -> Any:
    """A confirmed TOTP device for the user (the second factor personas log in with)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def client_for(user: Any, *, second_factor: bool = True) -> APIClient:
    """A logged-in console client; by default it has also passed two-factor verification."""
    from django_otp import DEVICE_ID_SESSION_KEY

    client = APIClient()
    client.force_login(user)
    if second_factor:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = verified_device(user).persistent_id
        session.save()
    return client


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


__all__ = ["PASSWORD", "client_for", "connection", "service_unavailable"]
