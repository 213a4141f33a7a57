"""Model instances from a plain-SQL row, for a few hot reads whose ORM compilation costs more
CPU than the read itself (an API token with its user on every API request: ~1.5 ms of Python
for a sub-millisecond indexed read; benchmarks/LOAD.md, "Session 9").

The columns are every concrete field of the model, in `_meta` order; each value goes through
the converters the ORM would apply (the backend's, then the field's own `from_db_value`), so
an instance built here is the instance a QuerySet would have built, on PostgreSQL and on the
embedded SQLite alike. Use it for simple, fixed reads only: anything with a filter worth
composing belongs in the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connections
from django.db.models import Model

M = TypeVar("M", bound=Model)

_Converter = Callable[[Any, Any, Any], Any]


def columns(model: type[Model], alias: str) -> str:
    """`alias."col", …` for every concrete field of `model`, in the order `build` expects."""
    quote = connections["default"].ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def _converters(model: type[Model], using: str) -> list[tuple[Any, list[_Converter]]]:
    connection = connections[using]
    out: list[tuple[Any, list[_Converter]]] = []
    for f in model._meta.concrete_fields:
        col = f.get_col(model._meta.db_table)
        out.append(
            (col, [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)])
        )
    return out


# Filled once per model and database; two threads racing on a first read each compute and
# store the same entry, so no lock is needed.
_cache: dict[
    tuple[type[Model], str, str], tuple[list[str], list[tuple[Any, list[_Converter]]]]
] = {}


def build(model: type[M], values: Sequence[Any], using: str = "default") -> M:
    """The instance of `model` from `values`, one per concrete field (see `columns`)."""
    connection = connections[using]
    key = (model, using, connection.vendor)
    entry = _cache.get(key)
    if entry is None:
        names = [f.attname for f in model._meta.concrete_fields]
        entry = _cache[key] = (names, _converters(model, using))
    names, converters = entry
    converted = []
    for value, (col, funcs) in zip(values, converters, strict=True):
        for func in funcs:
            value = func(value, col, connection)
        converted.append(value)
    return model.from_db(using, names, converted)
