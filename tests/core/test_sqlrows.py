"""core.sqlrows builds the instance a QuerySet would have built, on either database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from core import sqlrows
from core.audit import SystemActor
from core.authentication import token_check
from core.models import ApiToken
from core.services import api_token_create


def _fields(obj: Any) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


@pytest.mark.django_db
class SqlRowsTests:
    def test_a_row_read_in_plain_sql_is_the_orms_instance_field_by_field(self) -> None:
        token, _ = api_token_create(name="plain", actor=SystemActor("test"))
        ApiToken.objects.filter(pk=token.pk).update(
            last_used_at=timezone.now(), expires_at=timezone.now() + timedelta(days=3)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {sqlrows.columns(ApiToken, 't')} FROM {ApiToken._meta.db_table} t "  # noqa: S608
                "WHERE t.id = %s",
                [token.pk],
            )
            built = sqlrows.build(ApiToken, cursor.fetchone())
        orm = ApiToken.objects.get(pk=token.pk)
        assert _fields(built) == _fields(orm)
        assert built.expires_at is not None and built.expires_at.tzinfo is not None
        assert not built._state.adding and built._state.db == "default"

    def test_token_check_returns_the_token_with_its_user_as_the_orm_reads_them(self) -> None:
        token, key = api_token_create(name="joined", actor=SystemActor("test"))
        orm = ApiToken.objects.select_related("user").get(pk=token.pk)  # before the check's touch
        found = token_check(ApiToken.hash_key(key))
        assert found is not None
        assert _fields(found) == _fields(orm)
        assert _fields(found.user) == _fields(orm.user)
        assert isinstance(found.user, get_user_model())

    def test_a_revoked_or_unknown_key_finds_nothing(self) -> None:
        token, key = api_token_create(name="gone", actor=SystemActor("test"))
        assert token_check(ApiToken.hash_key("no-such-key")) is None
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        assert token_check(ApiToken.hash_key(key)) is None
