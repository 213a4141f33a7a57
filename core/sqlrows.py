"""Model instances from a plain-SQL row, for a few hot reads whose ORM compilation costs more
CPU than the read itself (an API token with its user on every API request: ~1.5 ms of Python
for a sub-millisecond indexed read; benchmarks/LOAD.md, "Session 9"); intake's reads and
INSERTs, which cost the same in compilation (session 11).

The columns are every concrete field of the model (or the ones named), in `_meta` order; each
value goes through the converters the ORM would apply (the backend's, then the field's own
`from_db_value`), so an instance built here is the instance a QuerySet would have built, on
PostgreSQL and on the embedded SQLite alike. Use it for simple, fixed statements on hot paths
only: anything with a filter worth composing belongs in the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeVar

from django.db import connections, transaction
from django.db.models import AutoField, BinaryField, Field, Model

M = TypeVar("M", bound=Model)

_Converter = Callable[[Any, Any, Any], Any]


def _fields(model: type[Model], fields: Sequence[str] | None) -> list[Field[Any, Any]]:
    if fields is None:
        return list(model._meta.concrete_fields)
    wanted = {model._meta.get_field(name).attname for name in fields}
    return [f for f in model._meta.concrete_fields if f.attname in wanted]


def columns(
    model: type[Model], alias: str, fields: Sequence[str] | None = None, using: str = "default"
) -> str:
    """`alias."col", …` for every concrete field of `model` (or only `fields`, by name), in the
    order `build` expects."""
    quote = connections[using].ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in _fields(model, fields))


def placeholders(n: int) -> str:
    """`%s, %s, …` for an `IN (…)` list of `n` values (SQLite has no `= ANY(array)`). An empty
    list is refused: `IN ()` is an error on PostgreSQL, where the ORM would match nothing."""
    if n < 1:
        raise ValueError("an IN list needs at least one value")
    return ", ".join(["%s"] * n)


def _converters(
    model: type[Model], fields: Sequence[Field[Any, Any]], connection: Any
) -> list[tuple[Any, list[_Converter]]]:
    """Per field, its column and the converters the ORM applies to a value read from it (the
    backend's, then the field's own `from_db_value`)."""
    out: list[tuple[Any, list[_Converter]]] = []
    for f in fields:
        col = f.get_col(model._meta.db_table)
        out.append(
            (col, [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)])
        )
    return out


def _convert(
    values: Sequence[Any], converters: list[tuple[Any, list[_Converter]]], connection: Any
) -> list[Any]:
    converted = []
    for value, (col, funcs) in zip(values, converters, strict=True):
        for func in funcs:
            value = func(value, col, connection)
        converted.append(value)
    return converted


# Filled once per model, field list and database; two threads racing on a first read each
# compute and store the same entry, so no lock is needed.
_cache: dict[tuple[Any, ...], tuple[list[str], list[tuple[Any, list[_Converter]]]]] = {}


def build(
    model: type[M],
    values: Sequence[Any],
    using: str = "default",
    fields: Sequence[str] | None = None,
) -> M:
    """The instance of `model` from `values`, one per concrete field (see `columns`); with
    `fields`, one per named field and the others deferred, as `QuerySet.only` leaves them."""
    connection = connections[using]
    key = (model, using, connection.vendor, None if fields is None else tuple(fields))
    entry = _cache.get(key)
    if entry is None:
        chosen = _fields(model, fields)
        entry = _cache[key] = ([f.attname for f in chosen], _converters(model, chosen, connection))
    names, converters = entry
    return model.from_db(using, names, _convert(values, converters, connection))


def select(
    model: type[M],
    where: str,
    params: Sequence[Any],
    *,
    fields: Sequence[str] | None = None,
    order_by: str = "",
    for_update: bool = False,
    using: str = "default",
) -> list[M]:
    """Instances of `model` from `SELECT <columns> FROM <its table> t WHERE <where>`, the caller's
    condition on alias `t` with bound `params`; `for_update` locks the rows where the database
    can (PostgreSQL; SQLite serialises writers instead, and the ORM omits it there too)."""
    connection = connections[using]
    if for_update and not connection.in_atomic_block:
        raise RuntimeError("select(for_update=True) outside a transaction would lock nothing")
    sql = (
        f"SELECT {columns(model, 't', fields, using)} "  # noqa: S608 - identifiers from the model
        f"FROM {connection.ops.quote_name(model._meta.db_table)} t WHERE {where}"
    )
    if order_by:
        sql += f" ORDER BY {order_by}"
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        rows = cursor.fetchall()
    return [build(model, row, using, fields) for row in rows]


@dataclass(frozen=True)
class _Insert:
    fields: list[Field[Any, Any]]
    prefix: str  # INSERT INTO t (cols) VALUES
    row: str  # (%s, …, %s)
    returning_sql: str  # RETURNING …, or "" when nothing is read back
    returning_params: tuple[Any, ...]
    returning: list[str]  # attnames of the fields read back
    converters: list[tuple[Any, list[_Converter]]]  # theirs, as `_converters` gives them


_insert_cache: dict[tuple[type[Model], str, str, bool], _Insert | None] = {}


def _plain_placeholder(field: Field[Any, Any], connection: Any) -> bool:
    """Whether the compiler would write this field's value as a bare `%s`: every field without
    a `get_placeholder` of its own, and a BinaryField where the backend's binary placeholder is
    `%s` (PostgreSQL, SQLite; MySQL writes `_binary %s`)."""
    if not hasattr(field, "get_placeholder"):
        return True
    return isinstance(field, BinaryField) and connection.ops.binary_placeholder_sql(b"") == "%s"


def _insert_plan(model: type[Model], using: str, *, with_pk: bool) -> _Insert | None:
    """The statement's fixed parts, or None when the ORM's compiler must do it: a field with
    its own placeholder, a database-assigned key the backend cannot return from a multi-row
    INSERT, or an auto key the caller set."""
    connection = connections[using]
    opts = model._meta
    auto = isinstance(opts.pk, AutoField)
    fields = [
        f
        for f in opts.concrete_fields
        if not f.generated and (with_pk or not isinstance(f, AutoField))
    ]
    if (
        (auto and with_pk)
        or (not auto and not with_pk)
        or opts.parents  # multi-table inheritance: bulk_create refuses it, and so do we
        or any(not _plain_placeholder(f, connection) for f in fields)
        or (auto and not connection.features.can_return_rows_from_bulk_insert)
    ):
        return None
    quote = connection.ops.quote_name
    returning = list(opts.db_returning_fields)
    returning_sql, returning_params = connection.ops.return_insert_columns(returning) or ("", ())
    return _Insert(
        fields=fields,
        # Identifiers from the model's own metadata, quoted; every value is a bound parameter.
        prefix=(
            f"INSERT INTO {quote(opts.db_table)} "  # noqa: S608
            f"({', '.join(quote(f.column) for f in fields)}) VALUES "
        ),
        row="(" + ", ".join(["%s"] * len(fields)) + ")",
        returning_sql=returning_sql,
        returning_params=tuple(returning_params),
        returning=[f.attname for f in returning],
        converters=_converters(model, returning, connection),
    )


def insert(model: type[M], objs: Sequence[M], using: str = "default") -> list[M]:
    """INSERT new instances of `model` and set the columns the database returns:
    `bulk_create(objs)` without compiling a query on every call.

    The same values reach the database: each field's `pre_save(obj, add=True)` (auto_now_add,
    file names) then `get_db_prep_save`, for the same columns (the concrete fields less
    generated ones, and less an auto primary key, which the database assigns), and every
    `db_returning` field (the auto key, generated fields) is read back through the ORM's
    converters. Like `bulk_create`: no signals, no `save()`. Compiling the INSERT was most of
    the Python of a single intake's five inserts (benchmarks/LOAD.md, "Session 11").
    Anything outside this plain shape (an auto key already set, keys set on some instances and
    not others, an expression or database default as a value, a field with a placeholder other
    than `%s`, multi-table inheritance) goes to `bulk_create` itself, so the rows written never
    differ.
    """
    objs = list(objs)
    if not objs:
        return objs
    connection = connections[using]
    with_pk = objs[0].pk is not None
    key = (model, using, connection.vendor, with_pk)
    if key not in _insert_cache:
        _insert_cache[key] = _insert_plan(model, using, with_pk=with_pk)
    plan = _insert_cache[key]
    if (
        plan is None
        or any((obj.pk is not None) != with_pk for obj in objs)
        # An expression or database default as a value: checked before any pre_save runs,
        # so bulk_create starts from the instances as given.
        or any(
            hasattr(getattr(obj, f.attname), "resolve_expression")
            for obj in objs
            for f in plan.fields
        )
    ):
        return model._default_manager.db_manager(using).bulk_create(objs)
    rows: list[list[Any]] = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        values = []
        for f in plan.fields:
            value = f.pre_save(obj, add=True)
            values.append(f.get_db_prep_save(value, connection=connection))
        rows.append(values)
    # Rows per statement: what the backend allows (SQLite: its bound-parameter limit), and
    # never more parameters than PostgreSQL's protocol allows (65,535).
    size = max(1, min(connection.ops.bulk_batch_size(plan.fields, objs), 65535 // len(plan.fields)))
    returned: list[Any] = []
    # The statements of one call are applied together, as bulk_create's are. One statement is
    # atomic by itself: then only mark an enclosing transaction for rollback on an error, as
    # Model.save does (an event recorded outside a transaction stays one round trip).
    together = (
        transaction.atomic(using=using, savepoint=False)
        if len(rows) > size
        else transaction.mark_for_rollback_on_error(using)
    )
    with together, connection.cursor() as cursor:
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            sql = plan.prefix + ", ".join([plan.row] * len(batch))
            params = [*chain.from_iterable(batch)]
            if plan.returning_sql:
                cursor.execute(f"{sql} {plan.returning_sql}", [*params, *plan.returning_params])
                returned.extend(cursor.fetchall())
            else:
                cursor.execute(sql, params)
    if plan.returning:
        for obj, values in zip(objs, returned, strict=True):
            converted = _convert(values, plan.converters, connection)
            for attname, value in zip(plan.returning, converted, strict=True):
                setattr(obj, attname, value)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    return objs
