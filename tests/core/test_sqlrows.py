"""core.sqlrows builds the instance a QuerySet would have built, on either database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from core import sqlrows
from core.audit import SystemActor
from core.authentication import token_check
from core.models import ApiToken, AuditEvent, EvidenceKey
from core.services import api_token_create
from moderation.models import Case
from principles.models import HarmCategory, Priority


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


def _case(subject: str, at: Any) -> Case:
    case = Case(
        subject_key=subject,
        source="test",
        priority=Priority.P1,
        category=HarmCategory.objects.order_by("pk").first(),
        sla_due_at=at + timedelta(hours=4),
        created_at=at,
    )
    case.add_reason("intake: test", at=at)
    return case


def _stored(obj: Any, *, skip: set[str]) -> dict[str, Any]:
    return {k: v for k, v in _fields(obj).items() if k not in skip}


@pytest.mark.django_db
class InsertTests:
    """`sqlrows.insert` writes and reads back what `bulk_create` does, without compiling."""

    def test_the_rows_and_returned_columns_are_bulk_creates_field_by_field(self) -> None:
        at = timezone.now()
        [ours] = sqlrows.insert(Case, [_case("insert:ours", at)])
        [theirs] = Case.objects.bulk_create([_case("insert:theirs", at)])
        skip = {"id", "subject_key", "updated_at"}  # the key, the case, auto_now
        # In memory: the key and the generated column are read back, the state is saved.
        assert ours.pk is not None and ours.pk != theirs.pk
        assert ours.active is True and theirs.active is True
        assert not ours._state.adding and ours._state.db == "default"
        assert _stored(ours, skip=skip) == _stored(theirs, skip=skip)
        # In the database: every column as bulk_create stored it.
        assert _stored(Case.objects.get(pk=ours.pk), skip=skip) == _stored(
            Case.objects.get(pk=theirs.pk), skip=skip
        )

    def test_many_rows_get_their_keys_in_the_order_given(self) -> None:
        rows = [
            AuditEvent(created_at=timezone.now(), actor_label="t", verb=f"test.{n}", data={"n": n})
            for n in range(5)
        ]
        sqlrows.insert(AuditEvent, rows)
        ids = [r.pk for r in rows]
        assert ids == sorted(ids) and len(set(ids)) == 5
        stored = dict(AuditEvent.objects.filter(pk__in=ids).values_list("pk", "data"))
        assert [stored[r.pk] for r in rows] == [{"n": n} for n in range(5)]

    def test_a_key_the_caller_chose_is_inserted_as_given(self) -> None:
        # EvidenceKey: a UUID key chosen by the caller and a BinaryField, both on the plain
        # path (not bulk_create).
        assert sqlrows._insert_plan(EvidenceKey, "default", with_pk=True) is not None
        row = EvidenceKey(name="chosen", master_key_id="m1", wrapped=b"\x01" * 40)
        chosen = row.pk
        sqlrows.insert(EvidenceKey, [row])
        stored = EvidenceKey.objects.get(pk=chosen)
        assert bytes(stored.wrapped) == b"\x01" * 40 and stored.name == "chosen"
        assert not row._state.adding

    def test_an_expression_or_a_mix_of_set_and_unset_keys_goes_to_bulk_create(self) -> None:
        event = AuditEvent(created_at=Now(), actor_label="t", verb="test.expr", data={})
        sqlrows.insert(AuditEvent, [event])
        assert AuditEvent.objects.get(pk=event.pk).created_at is not None
        # A key set on one instance only: the plain path would drop it; bulk_create keeps it.
        unused = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        chosen = AuditEvent(
            pk=unused + 1000, actor_label="t", verb="test.b", data={}, created_at=timezone.now()
        )
        plain = AuditEvent(actor_label="t", verb="test.a", data={}, created_at=timezone.now())
        sqlrows.insert(AuditEvent, [plain, chosen])
        assert AuditEvent.objects.get(pk=unused + 1000).verb == "test.b"
        assert plain.pk is not None and AuditEvent.objects.get(pk=plain.pk).verb == "test.a"

    def test_an_empty_in_list_is_refused_not_sent(self) -> None:
        with pytest.raises(ValueError, match="at least one value"):
            sqlrows.placeholders(0)

    def test_nothing_to_insert_is_no_statement(self, django_assert_num_queries: Any) -> None:
        with django_assert_num_queries(0):
            assert sqlrows.insert(AuditEvent, []) == []


@pytest.mark.django_db
class SelectTests:
    def test_selected_rows_are_the_orms_instances(self) -> None:
        at = timezone.now()
        [case] = sqlrows.insert(Case, [_case("select:a", at)])
        [found] = sqlrows.select(Case, "t.subject_key = %s AND t.active", ["select:a"])
        assert _fields(found) == _fields(Case.objects.get(pk=case.pk))

    def test_named_fields_only_leave_the_others_deferred_as_only_does(self) -> None:
        [case] = sqlrows.insert(Case, [_case("select:b", timezone.now())])
        [found] = sqlrows.select(Case, "t.id = %s", [case.pk], fields=("id", "subject_key"))
        assert (
            found.get_deferred_fields()
            == Case.objects.only("id", "subject_key").get(pk=case.pk).get_deferred_fields()
        )
        assert found.subject_key == "select:b"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_locking_outside_a_transaction_is_refused() -> None:
    from django.db import transaction

    with transaction.atomic():
        assert sqlrows.select(Case, "t.id = %s", [0], for_update=True) == []
    with pytest.raises(RuntimeError, match="outside a transaction"):
        sqlrows.select(Case, "t.id = %s", [0], for_update=True)
